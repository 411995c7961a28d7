"""The analysis: options, the collector (ended flows + facts -> frames), and `analyze()`.

captures -> sources -> decode -> flow table -> dissectors -> collector (-> stages) -> frames. The
loop over sources is an engine's (`analyzer.engines`: the serial engine by default); the frames and
their schemas come from the dissector registry (`analyzer.dissect`), so nothing here names a protocol.
"""

from __future__ import annotations

import collections
import functools
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pyarrow as pa

from analyzer import schema
from analyzer._gc import paced_gc
from analyzer.config import Options, memory_shares
from analyzer.dissect import (
    DissectContext,
    Dissector,
    Facts,
    FlowPayload,
    FrameSpec,
    column_groups,
    declarations,
    declared,
    flow_schema,
    frame_specs,
    merge_handover,
    registered,
)
from analyzer.dissect.base import Column
from analyzer.dissect.ftp_link import FtpDataLink
from analyzer.dissect.midstream import picked_up_late, rebased, second_look, shifted
from analyzer.errors import UsageError
from analyzer.flows.table import EndedFlows
from analyzer.keylog import KeyStore
from analyzer.sources.batch import Problem
from analyzer.sources.scan import PathArg

if TYPE_CHECKING:
    import pandas as pd

    from analyzer.engines import Engine
    from analyzer.engines.progress import Progress
    from analyzer.sources.base import Source


# The row order of frames whose chunks do not come in it: .flows chunks come in the order flows
# ended; a sink that wants the frame's order sorts by these columns, stably (report.SortedSink).
FRAME_ORDER: dict[str, tuple[str, ...]] = {"flows": ("ts_start", "uid")}


class FrameSink(Protocol):
    """Takes a frame chunk by chunk instead of the frame being kept in memory: analyze(sinks=...).

    Every chunk is a DataFrame with the frame's declared schema (`Analysis.schemas[name]`: columns
    and dtypes); put together in the order given, the chunks are the frame the analysis would return
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


class Stage(Protocol):
    """A step the collector runs on each chunk of ended flows, before the chunk is kept or goes to
    a sink, so a judgement (the policy layer) runs chunk by chunk on streamed output in constant
    memory. It declares the flow columns it adds (`columns`) and the frames it makes (`frames`).

    `on_flows(chunk)` gets the chunk's Arrow columns (the flows schema so far) and returns the values
    of its columns (lists or numpy arrays, one per flow, None missing) and rows for its frames;
    `finish()` returns rows made at the end (a summary over every chunk).

    Optionally, `reads` names dissector frames (tls, certs, ...) whose rows the stage wants: the
    collector hands each flow's rows to `on_rows(frame, uid, rows)` as the dissectors make them,
    before that flow's chunk reaches `on_flows`, and keeps them only if the analysis builds the
    frame anyway (so a stage can judge sessions chunk by chunk without the frame in memory).
    `reads_columns` names the flow columns it reads: the optional column groups they belong to
    (`Column.group`) are made in this run (`Plan.groups`), and only then."""

    name: str
    columns: tuple[Column, ...]
    frames: tuple[FrameSpec, ...]

    def on_flows(self, chunk: Mapping[str, pa.Array]) -> tuple[Mapping[str, Any], Mapping[str, list[dict[str, Any]]]]:
        ...

    def finish(self) -> Mapping[str, list[dict[str, object]]]: ...


class Analysis:
    """The result of one analysis: pandas frames with declared schemas, by name.

    `result.flows`, `result["tls"]`, `result.frame_names`: every frame the analysis has (the
    engine's flows, anomalies and sources, and those of the registered dissectors and stages).
    Each frame is made from the collected Arrow columns when it is first read (then kept): a caller
    that reads one frame pays for no other (the CLI's streaming commands read none). A frame given
    to the constructor is used as it is."""

    __slots__ = ("_builders", "_frames", "_names", "schemas", "stats")

    def __init__(self, frames: Mapping[str, pd.DataFrame] | None = None, *,
                 builders: Mapping[str, Callable[[], pd.DataFrame]] | None = None,
                 schemas: Mapping[str, Mapping[str, str]] | None = None,
                 stats: dict[str, object] | None = None, **given: pd.DataFrame) -> None:
        self._frames: dict[str, pd.DataFrame] = {**(frames or {}), **given}
        self._builders = {k: v for k, v in (builders or {}).items() if k not in self._frames}
        self._names = tuple(dict.fromkeys((*self._frames, *self._builders)))
        self.schemas: dict[str, Mapping[str, str]] = dict(schemas or {})
        self.stats: dict[str, object] = stats if stats is not None else {}

    @property
    def frame_names(self) -> tuple[str, ...]:
        return self._names

    def __getitem__(self, name: str) -> pd.DataFrame:
        frame = self._frames.get(name)
        if frame is None:
            builder = self._builders.pop(name, None)
            if builder is None:
                raise KeyError(f"no frame {name!r}; this analysis has: {', '.join(self.frame_names)}")
            frame = self._frames[name] = builder()
        return frame

    def __getattr__(self, name: str) -> pd.DataFrame:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"'Analysis' has no frame {name!r}; it has: {', '.join(self.frame_names)}") from None

    def __dir__(self) -> list[str]:
        return [*super().__dir__(), *self.frame_names]

    @property
    def flows(self) -> pd.DataFrame:
        """One row per flow (schema: `schemas["flows"]`, i.e. analyzer.FLOWS)."""
        return self["flows"]

    @property
    def anomalies(self) -> pd.DataFrame:
        """What was malformed or unexpected, with layer, kind, offset."""
        return self["anomalies"]

    @property
    def sources(self) -> pd.DataFrame:
        """One row per capture: packets read, problems, status."""
        return self["sources"]

    def __repr__(self) -> str:
        counts = ", ".join(f"{len(self[name])} {name}" for name in self.frame_names if name != "sources")
        return f"<Analysis {counts}>"


class _Dissection:
    """This run's dissectors: chooses one per flow (port hint first, then content probes), follows
    hand-overs, falls back to content search for unclaimed TCP flows, and checks every fact against
    what the dissector declared (an undeclared key is an anomaly, never a KeyError later)."""

    def __init__(self, dissectors: Sequence[Any], context: DissectContext) -> None:
        self.dissectors: list[Any] = []
        for proto in dissectors:
            for_run = getattr(proto, "for_run", None)
            self.dissectors.append(for_run(context) if callable(for_run) else proto)
        self.by_name = {d.name: d for d in self.dissectors}
        self.finders = [d for d in self.dissectors if callable(getattr(d, "find_start", None))
                        and callable(getattr(d, "dissect_from", None))]
        self.resyncers = [d for d in self.dissectors if callable(getattr(d, "resync", None))]
        self.by_port: dict[tuple[str, int], list[Any]] = {}
        self._orders: dict[tuple[str, int], tuple[Any, ...]] = {}
        for d in self.dissectors:
            for t in d.transports:
                for p in d.ports:
                    self.by_port.setdefault((t, p), []).append(d)
        # what each dissector may set: its declared columns plus the encryption state every one sets
        self._columns = {d.name: frozenset((*_STATE_COLUMNS, *(c.name for c in declared(d, "columns"))))
                         for d in self.dissectors}
        # the app_protocol values each declares (none declared: not checked)
        self._protocols = {d.name: frozenset(declared(d, "app_protocols")) for d in self.dissectors}
        self._frames = {d.name: {f.name: frozenset(f.schema) for f in declared(d, "frames")} for d in self.dissectors}
        self._checked_keys: set[tuple[str, tuple[str, ...]]] = set()

    def run(self, fp: FlowPayload) -> Facts:
        claimed = self._first_claim(fp)
        if claimed is None and self.resyncers and picked_up_late(fp):
            claimed = self._mid_stream(fp)
        if claimed is None:
            found = self._after_cleartext(fp) if fp.transport == "tcp" else None
            return found if found is not None else Facts(flow={"payload_shape": payload_shape(fp)})
        d, facts = claimed
        for _ in range(4):  # a hand-over chain longer than this is a loop
            h = facts.handover
            if h is None:
                break
            child = self.by_name.get(h.to)
            if child is None or not callable(getattr(child, "dissect_from", None)):
                facts.handover = None
                facts.anomaly("handover_refused", f"{d.name}: no dissector {h.to!r} takes a hand-over")
                break
            child_facts = self._call(child, child.dissect_from, fp, h.to_server_offset, h.to_client_offset)
            facts, d = merge_handover(facts, child_facts), child
        return facts

    def _mid_stream(self, fp: FlowPayload) -> tuple[Any, Facts] | None:
        """The second look at a flow picked up mid-stream that no probe claimed: a dissector that
        recognises a later message reads the flow from there (analyzer.dissect.midstream)."""
        try:
            found = second_look(self.resyncers, fp)
        except Exception as exc:  # a bug must not lose the run's results
            return self.resyncers[0], _failed(self.resyncers[0], exc)
        if found is None:
            return None
        d, to_server, to_client = found
        facts = self._call(d, d.dissect, rebased(fp, to_server, to_client))
        return d, shifted(facts, to_server, to_client)

    def _after_cleartext(self, fp: FlowPayload) -> Facts | None:
        """The fallback for flows no dissector claimed: a dissector that can find where its protocol
        starts after a cleartext prefix (TLS after STARTTLS of a protocol without a dissector of its
        own, SOCKS, SSL requests) gets the stream from there."""
        for d in self.finders:
            try:
                start = d.find_start(fp)
            except Exception as exc:  # a bug must not lose the run's results
                return _failed(d, exc)
            if start is not None:
                return self._call(d, d.dissect_from, fp, *start)
        return None

    def _order(self, transport: str, port: int) -> tuple[Any, ...]:
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

    def _first_claim(self, fp: FlowPayload) -> tuple[Any, Facts] | None:
        for d in self._order(fp.transport, fp.server_port):
            try:
                if not d.probe(fp):
                    continue
            except Exception as exc:  # a dissector bug must not lose the run's results
                return d, _failed(d, exc)
            return d, self._call(d, d.dissect, fp)
        return None

    def _call(self, d: Any, method: Callable[..., Facts], *args: Any) -> Facts:
        try:
            facts = method(*args)
        except Exception as exc:  # a dissector bug must not lose the run's results
            return _failed(d, exc)
        return self._checked(d, facts)

    def _checked(self, d: Any, facts: Facts) -> Facts:
        """Facts as declared: an undeclared flow key or frame (or row key) is dropped and becomes an
        anomaly naming the dissector (checked once per key set: a dissector sets the same keys)."""
        keys = tuple(facts.flow)
        if (d.name, keys) not in self._checked_keys:
            extra = [k for k in keys if k not in self._columns[d.name]]
            if not extra:
                self._checked_keys.add((d.name, keys))
            for k in extra:
                del facts.flow[k]
                facts.anomaly("undeclared_column", f"{d.name}: flow column {k!r} is not declared")
        protocols = self._protocols[d.name]
        if protocols and facts.flow.get("app_protocol", protocols) not in protocols:
            value = str(facts.flow["app_protocol"])
            facts.anomaly("undeclared_value", f"{d.name}: app_protocol {value[:64]!r} is not declared")
        frames = self._frames[d.name]
        for frame in [f for f in facts.rows if f != "anomalies"]:
            allowed = frames.get(frame)
            rows = facts.rows[frame]
            if allowed is None:
                del facts.rows[frame]
                facts.anomaly("undeclared_frame", f"{d.name}: {len(rows)} row(s) of undeclared frame {frame!r}")
                continue
            bad = [r for r in rows if not r.keys() <= allowed]
            if bad:
                facts.rows[frame] = [r for r in rows if r.keys() <= allowed]
                names = sorted({k for r in bad for k in r if k not in allowed})
                facts.anomaly("undeclared_column", f"{d.name}: {frame} row key(s) {names} not declared")
        return facts


# The encryption state every dissector may set on the flows it claims (analyzer.dissect.vocabulary).
_STATE_COLUMNS = ("app_protocol", "encrypted", "protection", "undecided_reason")
_PRINTABLE = bytes(range(0x20, 0x7F)) + b"\t\r\n"
SHAPE_BYTES = 64  # the first bytes of an unrecognised payload looked at for its shape


def payload_shape(fp: FlowPayload) -> str | None:
    """"printable" or "binary": the shape of the first bytes of a flow no dissector recognised (the
    client's first, else the server's); None when there are none. Nothing is guessed from the port."""
    if fp.transport == "tcp":
        head = (fp.to_server.data or fp.to_client.data)[:SHAPE_BYTES]
    else:
        head = next((d.payload[:SHAPE_BYTES] for d in fp.datagrams if d.payload), b"")
    if not head:
        return None
    return "binary" if head.translate(None, _PRINTABLE) else "printable"


def _failed(d: Any, exc: Exception) -> Facts:
    """The facts of a flow whose dissector raised: an anomaly naming it, and why `encrypted` is null."""
    facts = Facts(flow={"undecided_reason": "dissector_error"})
    facts.anomaly("dissector_error", f"{d.name}: {type(exc).__name__}: {exc}")
    return facts


def _is_none(values: np.ndarray) -> np.ndarray:
    """Elementwise `is None` of an object array, in C (`==` compares each element with None)."""
    return np.asarray(values == None, bool)  # noqa: E711


_STARTED = ("syn", "synack", "continued")  # client_by values of a TCP flow whose start was captured
# `visibility` values by code (what _visibility_codes returns)
VISIBILITIES = np.array(["both", "mid_stream", "client_only", "server_only"], dtype=object)
_MID_STREAM, _CLIENT_ONLY, _SERVER_ONLY = 1, 2, 3


def _equals_any(values: Any, choices: Sequence[str]) -> np.ndarray:
    """Elementwise `value in choices` of an object array, by `==` in C: np.isin on object arrays
    costs as much per element and adds its own set-up per call (measured with callgrind)."""
    out = np.asarray(values == choices[0], bool)
    for choice in choices[1:]:
        out |= np.asarray(values == choice, bool)
    return out


def _visibility_codes(cols: Mapping[str, Any]) -> np.ndarray:
    """The `visibility` of each flow as a code (index into VISIBILITIES): see `visibility`. Each
    string comparison of an object array costs ~130 instructions per element, so the client_by
    test runs on the TCP flows only and the codes, not the strings, are tested further on."""
    to_server = np.asarray(cols["packets_to_server"])
    to_client = np.asarray(cols["packets_to_client"])
    code = np.zeros(len(to_server), np.int8)
    tcp = np.flatnonzero(np.asarray(cols["transport"], object) == "tcp")
    if len(tcp):
        started = _equals_any(np.asarray(cols["client_by"], object)[tcp], _STARTED)
        code[tcp[~started]] = _MID_STREAM
    code[to_client == 0] = _CLIENT_ONLY
    code[to_server == 0] = _SERVER_ONLY
    return code


def visibility(cols: Mapping[str, Any]) -> np.ndarray:
    """What the capture saw of each flow of a chunk (the `visibility` column): one direction only
    (client_only, server_only: a one-sided mirror filter, or nobody answered), a TCP flow whose
    start was not captured (mid_stream: the mirror session began during the connection, or a
    rotated capture cut it), else both."""
    return VISIBILITIES[_visibility_codes(cols)]


def undecided_reasons(cols: Mapping[str, Any], extra: Mapping[str, np.ndarray], n: int,
                      dissected: bool, seen: np.ndarray | None = None) -> np.ndarray:
    """`undecided_reason` of a chunk of ended flows: null where `encrypted` is decided; else the
    dissector's reason, or the engine's (no payload, dissection off, nothing recognised it, or a
    dissector that recognised the protocol and gave no reason). A handshake that stayed incomplete
    on a flow seen from one side or from its middle (`seen`: the visibility column) is said so."""
    codes = None
    if seen is not None:
        codes = np.zeros(n, np.int8)
        for code in (_MID_STREAM, _CLIENT_ONLY, _SERVER_ONLY):
            codes[np.asarray(seen == VISIBILITIES[code], bool)] = code
    return _undecided_reasons(cols, extra, n, dissected, codes)


def _undecided_reasons(cols: Mapping[str, Any], extra: Mapping[str, Any], n: int, dissected: bool,
                       seen: np.ndarray | None) -> np.ndarray:
    """`undecided_reasons` with `seen` as visibility codes. Object-array comparisons are the cost
    here (~130 instructions per element each): the dissectors' own reasons are compared only
    where there are some, and the engine's own "undecided" rows are known without comparing."""
    enc = extra.get("encrypted")
    undecided = np.ones(n, bool) if enc is None else _is_none(enc)
    given = extra.get("undecided_reason")
    out = np.full(n, None, object) if given is None else np.array(given, dtype=object, copy=True)
    out[~undecided] = None
    payload = np.asarray(cols["payload_bytes_to_server"]) + np.asarray(cols["payload_bytes_to_client"])
    empty = undecided & (payload <= 0)
    out[empty] = "no_payload"
    reasoned = undecided & ~empty  # the dissector's reason where it gave one
    if given is not None:
        reasoned &= ~_is_none(out)
    else:
        reasoned[:] = False
    rest = undecided & ~empty & ~reasoned
    if not dissected:
        out[rest] = "not_dissected"
        return out
    app = extra.get("app_protocol")
    claimed = np.zeros(n, bool) if app is None else ~_is_none(app)
    out[rest & ~claimed] = "unknown_protocol"
    vague = rest & claimed
    out[vague] = "undecided"
    if seen is not None:
        at = np.flatnonzero(reasoned)
        if len(at):
            vague[at] = _equals_any(out[at], ("undecided", "handshake_incomplete"))
        one_sided = (seen == _CLIENT_ONLY) | (seen == _SERVER_ONLY)
        out[vague & one_sided] = "one_sided"
        out[vague & (seen == _MID_STREAM)] = "mid_stream"
        lost = np.asarray(cols["truncated"], bool) | (np.asarray(cols["missing_bytes"]) > 0)
        out[vague & lost & ~one_sided] = "truncated"
    return out


def _state_columns(columns: dict[str, Any], n: int, dissected: bool) -> None:
    """The engine's `visibility` and `undecided_reason` of a frame chunk of flows (`columns`: the
    engine's columns and the dissectors', lists or arrays), set in place. Computed once per chunk of
    FLOW_ROWS_PER_FRAME flows, not per exported batch: each numpy call has a fixed cost, and the
    batches are small (tens of flows)."""
    extra = {}
    for name in ("encrypted", "app_protocol", "undecided_reason"):
        values = columns.get(name)
        if values is not None:
            extra[name] = values if isinstance(values, np.ndarray) else np.fromiter(values, object, n)
    codes = _visibility_codes(columns)
    columns["visibility"] = VISIBILITIES[codes]
    columns["undecided_reason"] = _undecided_reasons(columns, extra, n, dissected, codes)


ROWS_PER_CHUNK = 4096
FLOW_ROWS_PER_FRAME = 16384  # ended flows gathered before their columns become a compact frame
_FOLDED = object()  # the end of a staged fold's steps (Collector.advance)
_NA_WHEN_NEGATIVE = ("client_port", "server_port", "vni", "vlan")  # -1: not applicable


def _flow_frame(chunks: list[tuple[dict[str, Any], int]], flows_schema: schema.Schema,
                dissected: bool | None = None) -> dict[str, pa.Array]:
    """Arrow columns (the flows schema) from several ended-flow column chunks, each converted once;
    with `dissected` given (whether the run dissects), also the engine's state columns
    (`_state_columns`)."""
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
        elif all(p is None or (isinstance(p, np.ndarray) and p.dtype == object) for p in parts):
            # object arrays (the dissectors' columns) joined in C, then one list of the same objects:
            # extending a list from each array iterated it element by element (~58M instructions on
            # bench_200k)
            col = np.concatenate([np.full(k, None, object) if p is None else p
                                  for p, (_, k) in zip(parts, chunks, strict=True)]).tolist()
        else:
            col = []
            for part, (_, k) in zip(parts, chunks, strict=True):
                col.extend([None] * k if part is None else part)
        columns[name] = col
    if dissected is not None:
        _state_columns(columns, n, dissected)
    return schema.arrow_columns(columns, flows_schema, n)


def _write_chunk(sink: FrameSink, columns: Mapping[str, pa.Array], frame_schema: schema.Schema) -> None:
    """One chunk to a sink: as an Arrow table when it takes those (see FrameSink), else as a frame."""
    write_table = getattr(sink, "write_table", None)
    if callable(write_table):
        arrow_schema = schema.arrow_schema(frame_schema)
        write_table(pa.Table.from_arrays([columns[name] for name in frame_schema], schema=arrow_schema))
    else:
        sink.write(schema.frame_from_arrow(columns, frame_schema))


@dataclass(frozen=True, slots=True)
class Plan:
    """What one analysis builds: its dissector prototypes, stages, the schema of every frame, the
    frames kept, and the merge rule of each row frame. Made once per analysis from the registry."""

    dissectors: tuple[Any, ...]
    stages: tuple[Any, ...]
    schemas: dict[str, dict[str, str]]
    specs: dict[str, FrameSpec]
    wanted: frozenset[str]
    fed: frozenset[str] = frozenset()  # frames whose rows go to stages that read them (Stage.reads)
    # optional flow column groups made in this run (Column.group): those of the columns stages read
    groups: frozenset[str] = frozenset()

    @staticmethod
    def make(options: Options, dissectors: Sequence[Any] | None = None, stages: Sequence[Any] = ()) -> Plan:
        if dissectors is None:
            # without dissection only the declarations are needed: the parsers are not imported
            protos = registered() if options.dissect.enabled else ()
            declared_by = protos or declarations()
        else:
            protos = declared_by = tuple(dissectors)
        groups = column_groups(declared_by, [c for stage in stages for c in getattr(stage, "reads_columns", ())])
        flows_schema = flow_schema(declared_by, groups)
        specs = frame_specs(declared_by)
        for stage in stages:
            for column in declared(stage, "columns"):
                if column.name in flows_schema:
                    raise UsageError(f"stage {stage.name!r}: flow column {column.name!r} exists already")
                schema.arrow_type(column.dtype)
                flows_schema[column.name] = column.dtype
            for spec in declared(stage, "frames"):
                if spec.name in specs or spec.name in ("flows", "anomalies", "sources"):
                    raise UsageError(f"stage {stage.name!r}: frame {spec.name!r} exists already")
                specs[spec.name] = spec
        schemas = {"flows": flows_schema, **{n: dict(s.schema) for n, s in specs.items()},
                   "anomalies": dict(schema.ANOMALIES), "sources": dict(schema.SOURCES)}
        optional = ("flows", *specs)
        frames = options.output.frames
        if frames is None:
            frames = optional
        unknown = set(frames) - set(optional)
        if unknown:
            raise UsageError(f"unknown frame(s): {', '.join(sorted(unknown))}; known: {', '.join(optional)}")
        fed = frozenset(f for stage in stages for f in getattr(stage, "reads", ()))
        if fed - set(specs):
            raise UsageError(f"stage reads unknown frame(s): {', '.join(sorted(fed - set(specs)))}")
        return Plan(protos, tuple(stages), schemas, specs, frozenset((*frames, "anomalies")), fed, groups)

    def streamable(self, name: str) -> bool:
        return name in ("flows", "anomalies") or (name in self.specs and self.specs[name].streamable)


class Collector:
    """Accumulates ended-flow chunks and facts into frames, or hands them to sinks chunk by chunk.
    Engines feed it (`add`, `anomaly`) and end it (`finish`)."""

    def __init__(self, options: Options, plan: Plan, sinks: Mapping[str, FrameSink] | None = None,
                 key: bytes | None = None, staged: bool = False) -> None:
        self.options = options
        self.plan = plan
        # `staged` (the live engine): a chunk of FLOW_ROWS_PER_FRAME flows is folded one step per
        # `advance()` (its Arrow columns; each stage, the policy's judging among them; its writing)
        # instead of all at once when it fills: see `advance`
        self.staged = staged and "flows" in plan.wanted
        self._folds: collections.deque[Iterator[None]] = collections.deque()
        # staged: the rows for the stages (`on_rows`) of the flows gathered, handed to each stage with
        # their chunk, just before it judges it: a stage takes the rows fed since its last chunk as
        # those of the next one (the policy's credentials), so rows of flows gathered while a fold is
        # still staged must not reach it before that fold's judging
        self._feeds: list[tuple[Any, str, str, list[dict[str, object]]]] = []
        self.flows_schema = plan.schemas["flows"]
        self.sinks = dict(sinks or {})  # frames handed over chunk by chunk instead of kept
        self.flow_chunks: list[dict[str, pa.Array]] = []  # Arrow columns of 16k flows each
        self.pending_flows: list[tuple[dict[str, Any], int]] = []
        self.pending_rows = 0
        self.rows: dict[str, list[dict[str, object]]] = {"anomalies": []}
        self.merged: dict[str, _DedupRows] = {}  # rows of Dedup frames, one per key
        self.feeds = {f: [s for s in plan.stages if f in getattr(s, "reads", ())] for f in plan.fed}
        # FTP data channels are joined to their control flow across flows (dissect.ftp_link): the FTP
        # dissector's announcements are needed for .flows even when the ftp_data frame is not built
        linking = options.dissect.enabled and "ftp_data" in plan.specs and "ftp_control_uid" in self.flows_schema
        self.ftp_link = FtpDataLink() if linking else None
        asked = plan.wanted | plan.fed
        # `key`: the run's fingerprint key, when the run spans processes (engines.dask)
        # the run's TLS secrets: --keylog's, and those its pcapng captures carry (add_secrets)
        self.keys = KeyStore(options.dissect.keylog)
        shares = memory_shares(options.flows.memory_budget)
        self.context = context = DissectContext(options.dissect, asked | {"ftp_data"} if linking else asked, key,
                                                self.keys, cert_cache_bytes=shares.cert_cache, groups=plan.groups)
        self.dissection = _Dissection(plan.dissectors, context) if options.dissect.enabled else None
        self.frames: dict[str, list[dict[str, pa.Array]]] = {}  # Arrow column chunks of row frames
        self.wanted = plan.wanted

    def add_secrets(self, source: str, texts: Iterable[bytes]) -> None:
        """A capture's Decryption Secrets Blocks (NSS key log text): their handshake secrets apply
        to the sessions dissected from now on (a DSB precedes the packets it decrypts). Lines not
        understood are an anomaly (counted; their text may hold a secret, so never shown)."""
        for text in texts:
            log = self.keys.add_text(text)
            if log.bad_lines:
                self.anomaly(source=source, layer="source", kind="keylog_lines_not_understood",
                             detail=f"decryption secrets block: {log.bad_lines} of {log.lines} key log lines "
                                    f"not understood (first: line {log.first_bad})", offset=None,
                             count=log.bad_lines)

    def dissect(self, ended: EndedFlows) -> list[tuple[FlowPayload, Facts]]:
        """The facts of the ended flows that have any (a distributed engine runs this where the
        flows ended and hands the result to `add(ended, dissected=...)`; the payloads may then be
        dropped: only each FlowPayload's uid and ts_start are read)."""
        if self.dissection is None:
            return []
        run = self.dissection.run
        out = []
        for fp in ended.payloads:
            facts = run(fp)
            if facts is not None:
                out.append((fp, facts))
        return out

    def add(self, ended: EndedFlows, dissected: Iterable[tuple[FlowPayload, Facts]] | None = None) -> None:
        """Take a chunk of ended flows: dissect their payloads (or take `dissected`, what
        `dissect(ended)` returned for them elsewhere) and keep or stream the rows."""
        if not len(ended):
            return
        cols = ended.columns
        extra: dict[str, np.ndarray] = {}
        if dissected is not None or (self.dissection is not None and ended.payloads):
            pos = {uid: i for i, uid in enumerate(cols["uid"])}
            n = len(ended)
            # The flow columns of each dissector's facts, grouped by their key tuple (a dissector
            # sets the same keys on every flow), are transposed in C below, not key by key here.
            by_keys: dict[tuple[str, ...], tuple[list[int], list[tuple[object, ...]]]] = {}
            run = self.dissection.run if self.dissection is not None else None
            if self.ftp_link is not None:
                self.ftp_link.ended(cols)
            results = dissected if dissected is not None else ((fp, run(fp)) for fp in ended.payloads if run)
            for fp, facts in results:
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
                    if self.ftp_link is not None and "ftp_data" in facts.rows:
                        row = pos[fp.uid]
                        facts.rows["ftp_data"] = self.ftp_link.announce(
                            fp.uid, int(cols["ts_start"][row]), int(cols["ts_end"][row]), facts.rows["ftp_data"])
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
        cut = extra.get("truncated")
        if cut is not None:  # a dissector's "a message was cut" adds to the capture's snap-length cuts
            extra["truncated"] = np.asarray(cols["truncated"], bool) | np.asarray(cut == True, bool)  # noqa: E712
        # visibility and undecided_reason are computed per frame chunk, in _fold_flows
        self.pending_flows.append(({**cols, **extra}, len(ended)))
        self.pending_rows += len(ended)
        if self.pending_rows >= FLOW_ROWS_PER_FRAME:
            self._fold_flows()

    def _fold_flows(self) -> None:
        """The gathered flows become a chunk of the flows frame: judged, then kept or written; at
        once, or when `staged` one step per `advance()` (one chunk staged at a time: one still staged
        when the next fills is finished first)."""
        self._drain_folds()  # (a chunk staged earlier goes first: the chunks keep their order)
        self.stage_fold()

    def _fold_steps(self, pending: list[tuple[dict[str, Any], int]],
                    feeds: list[tuple[Any, str, str, list[dict[str, object]]]]) -> Iterator[None]:
        """The fold of one chunk, a step per iteration: its Arrow columns; each stage (given first the
        rows of the chunk's flows, when staged); kept or written."""
        chunk = _flow_frame(pending, self.flows_schema, self.dissection is not None)
        del pending[:]  # (the gathered columns are no longer needed: freed now, not when the fold ends)
        if self.ftp_link is not None:
            self.ftp_link.apply(chunk, self.flows_schema, schema.arrow_column)
        for stage in self.plan.stages:
            yield
            for fed, frame, uid, rows in feeds:
                if fed is stage:
                    stage.on_rows(frame, uid, rows)
            self._stage(stage, chunk)
        yield
        self._keep_or_write(chunk)

    def advance(self) -> bool:
        """One step of the oldest staged fold; whether a fold is still staged. A fold of 16k flows
        costs ~0.4 s of CPU (Arrow columns, the policy's judging, the files, ~0.13 s each): in one
        piece it held the live listener's analysis thread that long while ~60k datagrams a
        second queued, and at ~95% of a core the receive queue then neared its end (0.84-0.97 of it
        in use after a fold, measured); a step at a time, the batches that arrive between steps are
        taken in between (their decoding and flows cost a small part of what they bring)."""
        if not self._folds:
            return False
        if next(self._folds[0], _FOLDED) is _FOLDED:
            self._folds.popleft()
        return bool(self._folds)

    def stage_fold(self) -> None:
        """Stage the flows gathered so far as a fold of their own, after any fold already staged (no
        work yet: `advance` takes its steps; a collector that is not staged folds them at once)."""
        if self.pending_flows:
            self._folds.append(self._fold_steps(self.pending_flows, self._feeds))
            self.pending_flows, self.pending_rows, self._feeds = [], 0, []
        if not self.staged:
            self._drain_folds()

    @property
    def folds_staged(self) -> int:
        return len(self._folds)

    def _drain_folds(self) -> None:
        while self._folds:
            collections.deque(self._folds.popleft(), maxlen=0)

    def fold(self) -> None:
        """Judge and write now what is gathered (the ended flows not yet a frame chunk, the rows of the
        other frames, a staged fold's remaining steps), as it would be at FLOW_ROWS_PER_FRAME or in
        finish(): an engine with idle moments (the live listener, before a window's close) does that
        work then, not in its close."""
        self._fold_flows()
        self._drain_folds()
        for frame in list(self.rows):
            self._fold(frame)

    def add_flow_chunk(self, chunk: dict[str, pa.Array]) -> None:
        """A chunk of the flows frame as Arrow columns (the flows schema before the stages' columns):
        the stages run on it, then it is kept or goes to the sink. Engines that build the chunks
        elsewhere (engines.dask: on the workers) hand them over here."""
        for stage in self.plan.stages:
            self._stage(stage, chunk)
        self._keep_or_write(chunk)

    def _keep_or_write(self, chunk: dict[str, pa.Array]) -> None:
        sink = self.sinks.get("flows")
        if sink is None:
            self.flow_chunks.append(chunk)
        else:  # flow-end order, as the chunks are kept; the sink sorts if it wants to
            _write_chunk(sink, chunk, self.flows_schema)

    def _stage(self, stage: Any, chunk: dict[str, pa.Array]) -> None:
        """A stage's columns join the chunk (in the declared dtypes); its rows join their frames."""
        n = len(chunk["uid"])
        columns, rows = stage.on_flows(chunk)
        for column in declared(stage, "columns"):
            values = columns.get(column.name)
            chunk[column.name] = (pa.nulls(n, schema.arrow_type(column.dtype)) if values is None
                                  else schema.arrow_column(values, column.dtype))
        for frame, frame_rows in rows.items():
            self._add_rows(frame, frame_rows)

    def _rows(self, fp: FlowPayload, facts: Facts) -> None:
        wanted = self.wanted
        for frame, rows in facts.rows.items():
            for stage in self.feeds.get(frame, ()):
                if self.staged:
                    self._feeds.append((stage, frame, fp.uid, rows))
                else:
                    stage.on_rows(frame, fp.uid, rows)
            if frame not in wanted:
                continue
            spec = self.plan.specs.get(frame)
            if spec is not None and spec.merge is not None:
                self._merge(spec, fp, rows)
                continue
            if frame == "anomalies":
                rows = [{"layer": "dissect", "ts": fp.ts_start, "uid": fp.uid, **row} for row in rows]
            elif "uid" in self.plan.schemas[frame]:
                rows = [row if "uid" in row else {**row, "uid": fp.uid} for row in rows]
            self._add_rows(frame, rows)

    def _add_rows(self, frame: str, rows: Iterable[dict[str, object]]) -> None:
        target = self.rows.setdefault(frame, [])
        for row in rows:
            if len(target) >= ROWS_PER_CHUNK:  # dict rows are ~10x larger than frame rows
                self._fold(frame)
                target = self.rows[frame]
            target.append(row)

    def _merge(self, spec: FrameSpec, fp: FlowPayload, rows: list[dict[str, object]]) -> None:
        """Rows of a Dedup frame: of each key, the row of the flow that started first (ts_start,
        then uid) is kept and the others count. First by start, not by the order flows end in: that
        order depends on when the flow table exports, and on partitions in a distributed run."""
        store = self.merged.get(spec.name)
        if store is None:
            store = self.merged[spec.name] = _DedupRows(spec, self.plan.schemas[spec.name])
        store.add(fp.ts_start, fp.uid, rows)

    def _fold(self, frame: str) -> None:
        rows = self.rows.get(frame)
        if rows:
            chunk = schema.arrow_from_rows(rows, self.plan.schemas[frame])
            self.rows[frame] = []
            self.add_frame_chunk(frame, chunk)

    def add_frame_chunk(self, frame: str, chunk: Mapping[str, pa.Array]) -> None:
        """A chunk of a row frame (not a Dedup one) as Arrow columns of its schema: kept, or to its sink."""
        sink = self.sinks.get(frame)
        if sink is None:
            self.frames.setdefault(frame, []).append(dict(chunk))
        else:
            _write_chunk(sink, chunk, self.plan.schemas[frame])

    def _frame(self, frame: str) -> pd.DataFrame:
        self._fold(frame)
        parts = self.frames.pop(frame, [])
        frame_schema = self.plan.schemas[frame]
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
            return schema.empty_frame(self.flows_schema)
        ts = np.concatenate([c["ts_start"].view(pa.int64()).fill_null(schema._NAT).to_numpy() for c in chunks])
        uid = np.concatenate([c["uid"].to_numpy(zero_copy_only=False) for c in chunks])
        order = np.lexsort((uid, ts))
        del ts, uid
        moved = not bool((order == np.arange(len(order))).all())  # (a Dask run's flows come in order)
        out: dict[str, Any] = {}
        for name, dtype in self.flows_schema.items():
            col = pa.chunked_array([c.pop(name) for c in chunks], schema.arrow_type(dtype))
            out[name] = schema.pandas_array(col.take(order) if moved else col, dtype)
            del col
        return pd.DataFrame(out, copy=False)

    def anomaly(self, **row: object) -> None:
        self.rows["anomalies"].append(row)

    def finish(self, sources: list[dict[str, object]], stats: dict[str, object]) -> Analysis:
        """The analysis; each frame is made when first read (Analysis). What is still to fold is
        folded now, so the collected state is Arrow columns and a few rows, not the dict rows."""
        self._fold_flows()
        self._drain_folds()
        if self.ftp_link is not None:  # data flows kept in earlier chunks than their announcement
            for chunk in self.flow_chunks:
                self.ftp_link.apply(chunk, self.flows_schema, schema.arrow_column)
        for stage in self.plan.stages:
            for frame, rows in stage.finish().items():
                self._add_rows(frame, rows)
        for frame in list(self.rows):
            self._fold(frame)
        builders: dict[str, Callable[[], pd.DataFrame]] = {"flows": self._flows}
        for name in self.plan.specs:
            if name in self.merged:
                builders[name] = self.merged.pop(name).frame
            else:
                builders[name] = functools.partial(self._frame, name)
        builders["anomalies"] = lambda: self._frame("anomalies")
        builders["sources"] = lambda: schema.frame_from_rows(sources, schema.SOURCES)
        return Analysis(stats=stats, builders=builders, schemas=self.plan.schemas)


class _DedupRows:
    """The rows of one Dedup frame while a run goes on, in little memory: each key's kept row is
    folded into Arrow columns with the others (ROWS_PER_CHUNK at a time), and per key only its
    position, the (ts_start, uid) of the flow that gave it and the count stay Python objects (about
    0.4 KB a key, against 2 KB and more for a certificate's dict row). A row replaced by an earlier
    flow's stays in its chunk unused. The frame is made at the end: the kept rows in the order their
    keys were first seen, with their counts."""

    __slots__ = ("_chunks", "_frame_schema", "_keys", "_pending", "_rows", "rule")

    def __init__(self, spec: FrameSpec, frame_schema: schema.Schema) -> None:
        assert spec.merge is not None
        self.rule = spec.merge
        self._frame_schema = frame_schema
        self._keys: dict[str, list[Any]] = {}  # key -> [ts_start, uid, count, row number]
        self._pending: list[dict[str, object]] = []
        self._chunks: list[dict[str, pa.Array]] = []
        self._rows = 0  # rows stored (pending and folded)

    def add(self, ts_start: float, uid: str, rows: list[dict[str, object]]) -> None:
        rule = self.rule
        for row in rows:
            key = str(row.get(rule.key))
            seen = self._keys.get(key)
            if seen is None or (ts_start, uid) < (seen[0], seen[1]):
                if rule.first_uid is not None and rule.first_uid not in row:
                    row = {**row, rule.first_uid: uid}
                count = 0 if seen is None else seen[2]  # the rows merged so far (the row's own value is not one)
                self._keys[key] = seen = [ts_start, uid, count, self._rows]
                self._pending.append(row)
                self._rows += 1
                if len(self._pending) >= ROWS_PER_CHUNK:
                    self._chunks.append(schema.arrow_from_rows(self._pending, self._frame_schema))
                    self._pending = []
            if rule.count is not None:
                seen[2] += 1

    def frame(self) -> pd.DataFrame:
        if self._pending:
            self._chunks.append(schema.arrow_from_rows(self._pending, self._frame_schema))
            self._pending = []
        if not self._keys:
            return schema.empty_frame(self._frame_schema)
        kept = self._keys.values()
        order = np.fromiter((k[3] for k in kept), np.int64, len(self._keys))
        columns: dict[str, Any] = {}
        for name, dtype in self._frame_schema.items():
            col = pa.chunked_array([c[name] for c in self._chunks], schema.arrow_type(dtype))
            columns[name] = col.take(order)
        if self.rule.count is not None:
            counts = np.fromiter((k[2] for k in kept), np.int64, len(self._keys))
            columns[self.rule.count] = schema.arrow_column(counts, self._frame_schema[self.rule.count])
        self._chunks, self._keys = [], {}
        return schema.frame_from_arrow(columns, self._frame_schema)


def _check_sinks(sinks: Mapping[str, FrameSink] | None, plan: Plan) -> dict[str, FrameSink]:
    if sinks is not None and not isinstance(sinks, Mapping):
        raise UsageError("sinks must map frame names to FrameSinks, e.g. {'flows': sink}")
    checked = dict(sinks or {})
    for name, sink in checked.items():
        if not callable(getattr(sink, "write", None)):
            raise UsageError(f"the sink for {name!r} has no write(chunk) method")
        if not plan.streamable(name):
            can = [n for n in plan.schemas if plan.streamable(n)]
            raise UsageError(f"frame {name!r} cannot go to a sink; these can: {', '.join(can)}")
        if name not in plan.wanted:
            raise UsageError(f"a sink is given for {name!r} but frames={tuple(sorted(plan.wanted))!r} "
                             "does not build it")
    return checked


def warn_problem(p: Problem) -> None:
    """The default `on_problem`: a Python warning naming the capture and the byte offset."""
    where = f" at byte {p.offset}" if p.offset is not None else ""
    warnings.warn(f"{p.source}{where}: {p.detail}", stacklevel=4)


@paced_gc
def analyze(paths: PathArg | Iterable[PathArg], *, options: Options | None = None,
            payload_budget: int | None = None, dissect: bool | None = None, tls_trim: bool | None = None,
            idle_timeout_tcp: float | None = None, idle_timeout_udp: float | None = None,
            active_timeout: float | None = None, max_flows: int | None = None,
            memory_budget: int | None = None, vxlan_ports: Sequence[int] | None = None,
            geneve_ports: Sequence[int] | None = None,
            ja4x: bool | None = None, credential_key: bytes | None = None, keylog: Any = None,
            strict: bool | None = None,
            frames: Sequence[str] | None = None, sinks: Mapping[str, FrameSink] | None = None,
            on_problem: Callable[[Problem], None] | None = None,
            dissectors: Sequence[Dissector] | None = None, stages: Sequence[Stage] = (),
            engine: Engine | None = None, sources: Sequence[Source] | None = None,
            on_progress: Callable[[Progress], None] | None = None) -> Analysis:
    """Read captures (files, directories, globs, '-' for stdin) and return the frames.

    Options: `options` (an `Options`, default `Options()`), and any of its values by keyword, which
    override it (None keeps the value): payload_budget (bytes kept per flow and direction for the
    dissectors, 65536), dissect (True), tls_trim (True), idle_timeout_tcp (300 s), idle_timeout_udp
    (60 s), active_timeout (3600 s), max_flows (262144), memory_budget (768 MiB: flow records, payload
    pages, payloads in flight, certificate cache and dedup; past it the payload budget is lowered,
    then the flows holding the most payload end early, each decision an anomalies row),
    vxlan_ports ((4789,)), geneve_ports ((6081,)), ja4x (False), credential_key (None: a random key
    per run for the credentials' fingerprints; 16-1024 bytes of your own make fingerprints comparable
    across runs), keylog (None: a key log path, paths, or an `analyzer.keylog.KeyLog`, whose TLS 1.3 /
    QUIC handshake secrets decrypt those sessions' handshakes, never their application data),
    strict (False), frames (None: all; a tuple builds only those).
    Captures are read in order into one flow table, so flows spanning rotated files are merged.
    Unreadable captures raise `CaptureError` when nothing at all could be read (or always with
    strict=True); otherwise they become rows of `.sources` and `.anomalies` and a warning
    (`on_problem` gets each problem instead of the warning). Paths a directory scan passes over
    (see `analyzer.sources.scan`) are said the same way, and the same capture given twice is read
    once (status `duplicate` in `.sources`); with strict=True any skip but a duplicate is fatal.

    `sinks` maps frame names to FrameSinks: those frames go to their sink chunk by chunk as the
    analysis runs, so memory does not grow with their rows, and come back empty (with their schema).
    The caller closes the sinks afterwards (or aborts them when this raises).

    Seams: `dissectors` (prototypes; default: the registry), `stages` (run on each flows chunk:
    see `Stage`), `engine` (default: `analyzer.engines.SerialEngine()`), `sources` (instead of
    paths: any `analyzer.sources.base.Source`, e.g. a live mirror socket), `on_progress` (gets an
    `analyzer.engines.progress.Progress` after each packet batch and each capture: captures, packets,
    bytes read of the total; for a progress display, which the CLI draws on a terminal).
    """
    from analyzer.engines import SerialEngine
    from analyzer.sources.base import open_sources

    opts = (options or Options()).with_values(
        payload_budget=payload_budget, dissect=dissect, tls_trim=tls_trim, idle_timeout_tcp=idle_timeout_tcp,
        idle_timeout_udp=idle_timeout_udp, active_timeout=active_timeout, max_flows=max_flows,
        memory_budget=memory_budget, vxlan_ports=vxlan_ports, geneve_ports=geneve_ports, ja4x=ja4x,
        credential_key=credential_key, keylog=keylog, strict=strict, frames=frames)
    log = opts.dissect.keylog
    if log is not None and log.bad_lines:  # counted, not fatal; the lines are never shown (secrets)
        (on_problem or warn_problem)(Problem(
            source=log.source or "key log", offset=None, kind="keylog_lines_not_understood",
            detail=f"{log.bad_lines} of {log.lines} key log lines not understood (first: line {log.first_bad})",
            fatal_in_strict=False))
    plan = Plan.make(opts, dissectors, stages)
    checked_sinks = _check_sinks(sinks, plan)
    if sources is None:
        from analyzer.sources.base import CaptureFile
        from analyzer.sources.readers import display_path
        from analyzer.sources.scan import as_path_list

        path_list = as_path_list(paths)  # bytes and PathLike too (bytes used to be iterated)
        sources = open_sources(path_list)
        if not any(isinstance(s, CaptureFile) for s in sources):
            from analyzer.errors import CaptureError

            skipped = "".join(f"; skipped {s.name}: {s.skipped.detail}" for s in sources[:3])  # type: ignore[union-attr]
            raise CaptureError(", ".join(map(display_path, path_list)) or "(no path)", None,
                               "no capture files found" + skipped)
    if on_progress is not None:
        from analyzer.engines.progress import metered

        sources = metered(sources, on_progress)
    collector = Collector(opts, plan, checked_sinks)
    return (engine or SerialEngine()).run(list(sources), opts, collector, on_problem or warn_problem)

