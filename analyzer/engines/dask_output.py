"""The Dask engine's distributed outputs: frames that stay on the workers (`dask.dataframe`), or a
Parquet dataset the workers write, partitioned by date and vantage.

`DaskEngine(client, output="dataframe")` or `DaskEngine(..., output=Dataset(path))` (engines.dask).
Pass 1 and the boundary re-run are those of the driver-side engine, except that each task's result
(its frames as Arrow chunks) stays in its worker's memory as the task's result; the driver gets a
`summary` of each (flow keys and times, problems, FTP announcements) and decides from them alone,
as before, which keys the boundary task re-runs. Then one `finalize` task per partition, scheduled
where its result is, drops the flows of its boundary keys (and their rows) and, when FTP control
flows announced data channels, sets the links the driver computed from the announcements and the
few flows a data channel could be (`ftp_side`). So the flows never travel to the driver:

- "dataframe": each frame is a `dask.dataframe` with one partition per capture partition (and one
  for the boundary re-run); a frame merged by key (certs: one row per certificate) is one partition
  made by a task that merges every partition's candidates (earliest flow's row, counts summed).
  Computed, each equals the serial engine's frame after sorting. `sources` and the driver's own
  anomalies (capture and decode problems) are small frames scattered from the driver.
- `Dataset`: the workers write each frame's rows with two more columns, `date` (UTC date of the
  flow's first packet, YYYY-MM-DD) and `vantage` (where the packets were mirrored from, below),
  Hive-partitioned: `PATH/date=2026-12-06/vantage=vni-42/part-00003-0.parquet`. A row of another
  frame (tls, anomalies, ...) takes its flow's date and vantage (by uid); rows with no flow (a
  capture's problems) go to `date=unknown/vantage=unknown`. `_SUCCESS` is
  written last by the driver; readers skip `_` files (pyarrow.dataset, pandas.read_parquet).

Vantage: a mirror session is told apart by what the flow key carries (DESIGN: the tunnel identity
is part of the key): `gwlb-<endpoint id>` for a GWLB GENEVE endpoint, else `vni-<VNI>` for a
VXLAN/GENEVE mirror session (Traffic Mirroring gives each session its own VNI), else
`outer-<outer source address>` for another tunnel (GRE/ERSPAN: the mirroring device), else
`direct` (packets captured where they flowed, no mirror tunnel).

When the run cannot be split (the engine's serial fallback: time going backwards, fragments, more
keys than max_flows; or sources that are not files) the frames are made in the driver and then
scattered / written by the driver (`local_output`): the same output, not distributed.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from analyzer._gc import paced_gc
from analyzer.engines.dask import (
    FTP_COLUMNS,
    PartResult,
    ftp_columns,
    kept_chunks,
    link_ftp,
    with_data_uids,
)
from analyzer.errors import UsageError
from analyzer.pipeline import Analysis

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from analyzer.dissect import FrameSpec
    from analyzer.pipeline import Collector, Plan

__all__ = ["PARTITION_KEYS", "Dataset", "DistributedAnalysis"]

PARTITION_KEYS = ("date", "vantage")
# the partition of rows with no flow (a capture's problems): a value, not null, whose Hive directory
# (__HIVE_DEFAULT_PARTITION__) leaves a reader unable to infer the key's type when it is the only one
UNKNOWN = "unknown"
DEDUP = "_dedup:"  # finalize's key of a Dedup frame's candidate rows
_SORT = ("_ts", "_uid")  # candidate columns: the flow that gave the row (its start, uid) and rows merged


@dataclass(frozen=True, slots=True)
class Dataset:
    """A Parquet dataset written by the workers. `partition_by`: any of "date" and "vantage", in the
    directory order wanted (() writes one file per partition, unpartitioned). `frame`: write only
    this frame, at `path` itself (the CLI's `intransit FRAME --out DIR`); None: every frame the
    analysis builds, each under `path/<frame>/` (sources unpartitioned)."""

    path: str
    partition_by: tuple[str, ...] = PARTITION_KEYS
    frame: str | None = None

    def __post_init__(self) -> None:
        bad = [k for k in self.partition_by if k not in PARTITION_KEYS]
        if bad or len(set(self.partition_by)) != len(self.partition_by):
            raise UsageError(f"partition_by takes {' and '.join(PARTITION_KEYS)} (each once), not "
                             f"{','.join(self.partition_by)}")

    def where(self, frame: str) -> str:
        return self.path if self.frame is not None else os.path.join(self.path, frame)

    def frames(self, plan: Plan) -> tuple[str, ...]:
        if self.frame is not None:
            return (self.frame,)
        return (*[n for n in ("flows", *plan.specs, "anomalies") if n in plan.wanted], "sources")


@dataclass(frozen=True, slots=True)
class FtpFix:
    """The FTP links made across partitions in the driver, for the workers to set: the link's final
    announcements ((host, port) -> control uid, start, end, protected) and the ftp_data rows' data_uids."""

    announced: dict[tuple[str, int], tuple[str, int, int, bool]]
    data_uids: dict[tuple[str, object, object], list[object]]


def check_output(output: Any, collector: Collector) -> None:
    """Distributed outputs take no sinks (the frames go elsewhere) and no stages (they run in the driver)."""
    if collector.sinks:
        raise UsageError("the dask engine's output= and sinks= exclude each other (the frames stay on the workers "
                         "or go to the dataset)")
    if collector.plan.stages:
        raise UsageError("the dask engine's output= takes no stages: stages run in the driver on every flow")
    if isinstance(output, Dataset):
        if output.frame is not None and output.frame not in collector.plan.schemas:
            raise UsageError(f"unknown frame {output.frame!r}")
        if os.path.isdir(output.path) and os.listdir(output.path):
            raise UsageError(f"{output.path} exists and is not empty: a dataset is written into a new directory")
        if os.path.exists(output.path) and not os.path.isdir(output.path):
            raise UsageError(f"{output.path} exists and is not a directory")


# ------------------------------------------------------------------------------------------ tags
def flow_tags(flows: pa.Table) -> tuple[pa.Array, pa.Array]:
    """(date, vantage) of each flow (see the module docstring), as Arrow strings."""
    import pyarrow as pa

    n = len(flows)
    ts = flows["ts_start"].combine_chunks() if n else pa.array([], pa.timestamp("ns"))
    days = ts.view(pa.int64()).to_numpy(zero_copy_only=False) if n else np.zeros(0, np.int64)
    nulls = ts.is_null().to_numpy(zero_copy_only=False) if n else np.zeros(0, bool)
    date = np.datetime_as_string(np.where(nulls, 0, days).astype("datetime64[ns]").astype("datetime64[D]"))
    date_col = pa.array(date.astype(object), pa.string(), mask=nulls)
    vantage = np.full(n, "direct", object)
    for name, prefix in (("outer_src_ip", "outer-"), ("vni", "vni-"), ("gwlb_endpoint_id", "gwlb-")):
        values = flows[name].to_pylist()  # later names win: the most specific identity
        for i, v in enumerate(values):
            if v is not None:
                vantage[i] = f"{prefix}{v}"
    return date_col, pa.array(vantage, pa.string())


def _tag(table: pa.Table, uids: pa.Array | pa.ChunkedArray, flow_uids: pa.Array, date: pa.Array,
         vantage: pa.Array) -> pa.Table:
    """`table` with the date and vantage of the flow of each row's uid (null without one)."""
    import pyarrow.compute as pc

    at = pc.index_in(uids, value_set=flow_uids)
    return (table.append_column("date", pc.take(date, at).fill_null(UNKNOWN))
            .append_column("vantage", pc.take(vantage, at).fill_null(UNKNOWN)))


def _untagged(table: pa.Table) -> pa.Table:
    """`table` with date and vantage UNKNOWN: its rows have no flow."""
    import pyarrow as pa

    unknown = pa.array([UNKNOWN] * len(table), pa.string())
    return table.append_column("date", unknown).append_column("vantage", unknown)


def _table(chunks: Sequence[Mapping[str, Any]], frame_schema: Mapping[str, str]) -> pa.Table:
    import pyarrow as pa

    from analyzer import schema

    arrow = schema.arrow_schema(dict(frame_schema))
    return pa.Table.from_arrays([pa.chunked_array([c[n] for c in chunks], arrow.field(n).type) for n in frame_schema],
                                schema=arrow)


# ------------------------------------------------------------------------------------------ worker side
@paced_gc
def finalize(result: PartResult, dropped: np.ndarray | None, ftp: FtpFix | None, plan: Plan, tag: bool
             ) -> dict[str, pa.Table]:
    """A kept result's frames as Arrow tables of their schemas (every frame the plan builds, and
    the candidate rows of each Dedup frame under DEDUP + name): the flows of the `dropped` keys left
    out, the FTP links of the run set, and with `tag` the date and vantage columns."""
    from analyzer import schema
    from analyzer.dissect.ftp_link import FtpDataLink

    kept = kept_chunks(result, dropped)
    flows_schema = plan.schemas["flows"]
    if ftp is not None:
        link = FtpDataLink()
        link.announced = dict(ftp.announced)
        for chunk in kept.flows:
            link.apply(chunk, flows_schema, schema.arrow_column)
        dtype = plan.schemas["ftp_data"]["data_uid"]
        kept.frames["ftp_data"] = [with_data_uids(c, ftp.data_uids, dtype) for c in kept.frames.get("ftp_data", [])]
    flows = _table(kept.flows, flows_schema)
    date, vantage = flow_tags(flows) if tag else (None, None)
    out: dict[str, pa.Table] = {}
    if "flows" in plan.wanted:
        out["flows"] = flows.append_column("date", date).append_column("vantage", vantage) if tag else flows
    for name in ("anomalies", *plan.specs):
        if name not in plan.wanted:
            continue
        spec = plan.specs.get(name)
        if spec is not None and spec.merge is not None:
            table = dedup_candidates(spec, plan.schemas[name], kept.merges)
            uids = table["_uid"]
            out[DEDUP + name] = _tag(table, uids, flows["uid"].combine_chunks(), date, vantage) if tag else table
            continue
        table = _table(kept.frames.get(name, []), plan.schemas[name])
        out[name] = _tag(table, table["uid"], flows["uid"].combine_chunks(), date, vantage) if tag else table
    return out


def dedup_candidates(spec: FrameSpec, frame_schema: Mapping[str, str],
                     merges: Sequence[tuple[str, float, str, list[dict[str, object]]]]) -> pa.Table:
    """One partition's rows of a Dedup frame, one per key: the row of the flow that started first
    (ts_start, then uid, as `pipeline._DedupRows`), with that flow's start and uid (`_ts`, `_uid`)
    and the rows of the key merged here (`_n`), for `merge_dedup`."""
    import pyarrow as pa

    from analyzer import schema

    rule = spec.merge
    assert rule is not None
    best: dict[str, list[Any]] = {}
    for frame, ts, uid, rows in merges:
        if frame != spec.name:
            continue
        for row in rows:
            key = str(row.get(rule.key))
            seen = best.get(key)
            if seen is None or (ts, uid) < (seen[0], seen[1]):
                if rule.first_uid is not None and rule.first_uid not in row:
                    row = {**row, rule.first_uid: uid}
                best[key] = seen = [ts, uid, 0 if seen is None else seen[2], row]
            seen[2] += 1
    kept = list(best.values())
    table = _table([schema.arrow_from_rows([k[3] for k in kept], dict(frame_schema))], frame_schema)
    return (table.append_column("_ts", pa.array([k[0] for k in kept], pa.float64()))
            .append_column("_uid", pa.array([k[1] for k in kept], pa.string()))
            .append_column("_n", pa.array([k[2] for k in kept], pa.int64())))


def merge_dedup(spec: FrameSpec, frame_schema: Mapping[str, str], *candidates: pa.Table) -> pa.Table:
    """Every partition's candidates of a Dedup frame into its rows: per key the earliest flow's
    row, its count (the rule's count column) the rows merged everywhere."""
    import pyarrow as pa

    from analyzer import schema

    rule = spec.merge
    assert rule is not None
    table = pa.concat_tables(candidates).sort_by([(c, "ascending") for c in _SORT])
    first: dict[str, int] = {}
    counts: dict[str, int] = {}
    for i, (key, n) in enumerate(zip(table[rule.key].to_pylist(), table["_n"].to_pylist(), strict=True)):
        k = str(key)
        first.setdefault(k, i)
        counts[k] = counts.get(k, 0) + n
    table = table.take(pa.array(list(first.values()), pa.int64())).drop_columns([*_SORT, "_n"])
    if rule.count is not None:
        at = table.schema.get_field_index(rule.count)
        values = schema.arrow_column(np.array([counts[k] for k in first], np.int64), frame_schema[rule.count])
        table = table.set_column(at, table.schema.field(at), values)
    return table


def frame_part(tables: Mapping[str, pa.Table], name: str, frame_schema: Mapping[str, str]) -> pd.DataFrame:
    """One partition of a frame's dask.dataframe (pandas, the declared dtypes)."""
    from analyzer import schema

    return schema.frame_from_arrow(tables[name], dict(frame_schema))


def merged_part(spec: FrameSpec, frame_schema: Mapping[str, str], *candidates: pa.Table) -> pd.DataFrame:
    from analyzer import schema

    return schema.frame_from_arrow(merge_dedup(spec, frame_schema, *candidates), dict(frame_schema))


def write_table(table: pa.Table, where: str, partition_by: Sequence[str], basename: str) -> int:
    """Rows of one frame into the dataset directory `where` (Hive-partitioned by `partition_by`);
    the tag columns not partitioned by are dropped. Returns the rows written."""
    import pyarrow as pa
    import pyarrow.dataset as pds
    import pyarrow.parquet as pq

    table = table.drop_columns([c for c in PARTITION_KEYS if c in table.column_names and c not in partition_by])
    if not len(table):
        return 0
    os.makedirs(where, exist_ok=True)
    if not partition_by:
        pq.write_table(table, os.path.join(where, f"{basename}-0.parquet"))
        return len(table)
    parts = pds.partitioning(pa.schema([(k, pa.string()) for k in partition_by]), flavor="hive")
    pds.write_dataset(table, where, format="parquet", partitioning=parts, basename_template=f"{basename}-{{i}}.parquet",
                      existing_data_behavior="overwrite_or_ignore")
    return len(table)


def write_part(tables: Mapping[str, pa.Table], dataset: Dataset, frames: Sequence[str], basename: str
               ) -> dict[str, int]:
    """A partition's frames (not the Dedup ones) into the dataset; rows written per frame."""
    return {name: write_table(tables[name], dataset.where(name), dataset.partition_by, basename)
            for name in frames if name in tables}


def write_merged(spec: FrameSpec, frame_schema: Mapping[str, str], dataset: Dataset, *candidates: pa.Table
                 ) -> dict[str, int]:
    table = merge_dedup(spec, frame_schema, *candidates)
    return {spec.name: write_table(table, dataset.where(spec.name), dataset.partition_by, "part-merged")}


def ftp_side(result: PartResult, dropped: np.ndarray | None, hostports: frozenset[tuple[object, object]]
             ) -> tuple[list[tuple[str, int, int, list[tuple[object, object, bool]]]], dict[str, np.ndarray]]:
    """For the FTP links across partitions: the partition's announcements whose control flow is
    kept, and the FTP_COLUMNS of its kept flows whose server is an announced host and port (only
    those can be a data channel)."""
    kept = kept_chunks(result, dropped)
    said = [a for a in result.announcements if a[0] not in kept.gone]
    cols = ftp_columns(kept.flows)
    hit = np.fromiter(((h, p) in hostports for h, p in zip(cols["server_ip"], cols["server_port"], strict=True)),
                      bool, len(cols["uid"]))
    return said, {name: col[hit] for name, col in cols.items()}


# ------------------------------------------------------------------------------------------ driver side
class DistributedAnalysis(Analysis):
    """An `Analysis` whose frames stay on the cluster: `.dask[name]` is a `dask.dataframe` (one
    partition per capture partition; computed, the serial engine's frame after sorting); reading
    `result[name]` / `result.flows` computes it into the driver (flows sorted as a serial run sorts
    them). The collections hold the cluster's results: they live as long as they and the client do."""

    __slots__ = ("dask",)

    def __init__(self, frames: Mapping[str, Any], *, schemas: Mapping[str, Mapping[str, str]],
                 stats: dict[str, object]) -> None:
        builders = {name: (lambda name=name, ddf=ddf: _computed(name, ddf)) for name, ddf in frames.items()}
        super().__init__(builders=builders, schemas=schemas, stats=stats)
        self.dask: dict[str, Any] = dict(frames)


def _computed(name: str, ddf: Any) -> pd.DataFrame:
    from analyzer.pipeline import FRAME_ORDER

    df = ddf.compute().reset_index(drop=True)
    order = FRAME_ORDER.get(name)
    if order:
        df = df.sort_values(list(order), kind="stable", na_position="first").reset_index(drop=True)
    return df


def _ftp_fix(client: Any, kept: Mapping[int, Any], results: Sequence[PartResult], boundary: PartResult | None,
             rerun: Mapping[int, np.ndarray], collector: Collector) -> FtpFix | None:
    """The FTP links across partitions (engines.dask.link_ftp), from the announcements and the
    flows that could be their data channels, fetched from the workers only when there are some."""
    if collector.ftp_link is None or len(results) < 2:
        return None
    said_all = [a for r in (*results, *([boundary] if boundary is not None else [])) for a in r.announcements]
    if not said_all:
        return None
    hostports = frozenset((h, p) for a in said_all for h, p, _ in a[3])
    sides = client.gather([client.submit(ftp_side, fut, rerun.get(i), hostports, pure=False)
                           for i, fut in kept.items()])
    said = [a for s, _ in sides for a in s]  # the boundary task's too (parts[-1]: all kept)
    cols = [c for _, c in sides]
    merged = {name: np.concatenate([c[name] for c in cols]) for name in FTP_COLUMNS}
    link, data_uids = link_ftp(sorted(said, key=lambda a: (a[2], a[0])), merged)
    return FtpFix(dict(link.announced), data_uids)


def deliver(engine: Any, client: Any, collector: Collector, rows: list[dict[str, object]],
            stats: dict[str, object], kept: dict[int, Any], kept_boundary: Any, results: Sequence[PartResult],
            boundary: PartResult | None, rerun: Mapping[int, np.ndarray]) -> Analysis:
    """The frames of results kept on the workers: as dask.dataframe collections, or a dataset."""
    plan = collector.plan
    parts = dict(kept)
    if kept_boundary is not None:
        parts[-1] = kept_boundary
    ftp = _ftp_fix(client, parts, results, boundary, rerun, collector) if kept else None
    tag = isinstance(engine.output, Dataset)
    fins = {i: client.submit(finalize, fut, rerun.get(i) if i >= 0 else None, ftp, plan, tag, pure=False)
            for i, fut in parts.items()}
    kept.clear()
    parts.clear()
    from analyzer import schema

    if tag:  # Arrow only: the driver of a dataset run never imports pandas (0.6-0.9 CPU-s)
        collector._fold("anomalies")  # the driver's anomalies (capture and decode problems)
        return _write(engine.output, client, plan, fins, rows, collector.frames.get("anomalies", []), stats)
    here = collector.finish(rows, stats)
    sources, anomalies = here["sources"], here["anomalies"]
    import dask.dataframe as dd

    frames: dict[str, Any] = {}
    for name in ("flows", *plan.specs, "anomalies"):
        sch = plan.schemas[name]
        if name not in plan.wanted:  # as a serial run has them: empty, with their schema
            frames[name] = dd.from_pandas(schema.empty_frame(sch), npartitions=1)
            continue
        spec = plan.specs.get(name)
        if spec is not None and spec.merge is not None:
            cands = [client.submit(operator.getitem, f, DEDUP + name, pure=False) for f in fins.values()]
            pieces = [client.submit(merged_part, spec, sch, *cands, pure=False)]
        else:
            pieces = [client.submit(frame_part, f, name, sch, pure=False) for f in fins.values()]
        if name == "anomalies":
            pieces.append(client.scatter(anomalies))
        frames[name] = dd.from_delayed(pieces, meta=schema.empty_frame(sch), verify_meta=False)
    frames["sources"] = dd.from_pandas(sources, npartitions=1)
    return DistributedAnalysis(frames, schemas=plan.schemas, stats=stats)


def _write(dataset: Dataset, client: Any, plan: Plan, fins: Mapping[int, Any], sources: list[dict[str, object]],
           anomalies: Sequence[Mapping[str, Any]], stats: dict[str, object]) -> Analysis:
    """The dataset: each partition's frames written where they were made, the Dedup frames by the
    task that merges them, the sources and the driver's anomalies by the driver."""

    from analyzer import schema

    frames = dataset.frames(plan)
    plain = [n for n in frames if n not in ("sources",) and not _is_dedup(plan, n)]
    jobs = [client.submit(write_part, f, dataset, plain, "part-boundary" if i < 0 else f"part-{i:05d}", pure=False)
            for i, f in fins.items()]
    for name in frames:
        if _is_dedup(plan, name):
            cands = [client.submit(operator.getitem, f, DEDUP + name, pure=False) for f in fins.values()]
            jobs.append(client.submit(write_merged, plan.specs[name], plan.schemas[name], dataset, *cands, pure=False))
    written: dict[str, int] = {}
    for counts in client.gather(jobs):
        for name, n in counts.items():
            written[name] = written.get(name, 0) + n
    if "anomalies" in frames and anomalies:
        table = _untagged(_table(anomalies, schema.ANOMALIES))
        written["anomalies"] = written.get("anomalies", 0) + write_table(table, dataset.where("anomalies"),
                                                                         dataset.partition_by, "part-driver")
    if "sources" in frames:
        table = _table([schema.arrow_from_rows(sources, schema.SOURCES)], schema.SOURCES)
        written["sources"] = write_table(table, dataset.where("sources"), (), "part-driver")
    os.makedirs(dataset.path, exist_ok=True)
    with open(os.path.join(dataset.path, "_SUCCESS"), "wb"):
        pass
    stats = {**stats, "dataset": dataset.path, "rows_written": written}
    return Analysis(builders={"sources": lambda: schema.frame_from_rows(sources, schema.SOURCES)},
                    schemas={"sources": schema.SOURCES}, stats=stats)


def _is_dedup(plan: Plan, name: str) -> bool:
    spec = plan.specs.get(name)
    return spec is not None and spec.merge is not None


def locally(output: Any, collector: Collector) -> Collector:
    """The collector of a run made in the driver for `output`: a dataset's rows take their flow's
    date and vantage, so the flows are collected even when the dataset does not hold them."""
    if isinstance(output, Dataset):
        collector.wanted = collector.wanted | {"flows"}
    return collector


def local_output(engine: Any, client: Any, analysis: Analysis, plan: Plan) -> Analysis:
    """The output of a run made in the driver (the serial fallback): scattered to the cluster as
    one-partition collections, or written as the dataset by the driver."""
    import pyarrow as pa

    from analyzer import schema

    if not isinstance(engine.output, Dataset):
        import dask.dataframe as dd

        frames = {n: dd.from_pandas(analysis[n], npartitions=1) for n in analysis.frame_names}
        return DistributedAnalysis(frames, schemas=plan.schemas, stats=dict(analysis.stats))
    dataset = engine.output
    # the flows were collected for the rows' tags (`locally`); they are written only when asked for
    names = [n for n in analysis.frame_names if n in plan.wanted or n in ("anomalies", "sources")]
    tables = {n: pa.Table.from_pandas(analysis[n], schema=schema.arrow_schema(dict(plan.schemas[n])),
                                      preserve_index=False) for n in names}
    flows = tables.get("flows")
    if flows is None:  # the rows' flows decide their date and vantage
        flows = pa.Table.from_pandas(analysis["flows"], schema=schema.arrow_schema(dict(plan.schemas["flows"])),
                                     preserve_index=False) if "flows" in analysis.frame_names else None
    date, vantage = flow_tags(flows) if flows is not None else (None, None)
    flow_uids = flows["uid"].combine_chunks() if flows is not None else pa.array([], pa.string())
    written: dict[str, int] = {}
    for name in dataset.frames(plan):
        table = tables.get(name)
        if table is None:
            continue
        if name == "sources":
            written[name] = write_table(table, dataset.where(name), (), "part-driver")
            continue
        spec = plan.specs.get(name)
        uids = table[spec.merge.first_uid] if spec is not None and spec.merge is not None and spec.merge.first_uid \
            else table["uid"] if "uid" in table.column_names else None
        if uids is not None and date is not None:
            table = _tag(table, uids, flow_uids, date, vantage)
        else:
            table = _untagged(table)
        written[name] = write_table(table, dataset.where(name), dataset.partition_by, "part-driver")
    os.makedirs(dataset.path, exist_ok=True)
    with open(os.path.join(dataset.path, "_SUCCESS"), "wb"):
        pass
    stats = {**analysis.stats, "dataset": dataset.path, "rows_written": written}
    return Analysis({"sources": analysis["sources"]}, schemas={"sources": schema.SOURCES}, stats=stats)

