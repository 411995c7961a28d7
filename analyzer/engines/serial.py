"""The serial engine: every source, in order, through one decoder and one flow table."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from analyzer.decode import ANOMALY_NAMES, decode
from analyzer.errors import CaptureError
from analyzer.flows.table import FlowTable
from analyzer.sources.base import SkippedPath
from analyzer.sources.batch import Problem
from analyzer.sources.readers import strict_detail

if TYPE_CHECKING:
    from analyzer.pipeline import Analysis, Collector, Options
    from analyzer.sources.base import Source


class SerialEngine:
    """Reads the sources one after the other into one flow table (flows spanning rotated captures
    are merged). A capture that cannot be read is a `sources` row, an anomaly and a problem; it is
    fatal only with `strict`, or when nothing at all could be read."""

    def run(self, sources: Sequence[Source], options: Options, collector: Collector,
            on_problem: Callable[[Problem], None]) -> Analysis:
        flow_options = options.flows
        if not options.dissect.enabled:  # no dissection: no payload to keep either
            flow_options = replace(flow_options, collect_payload=False)
        table = FlowTable(flow_options)
        dec = options.decode
        strict = options.strict
        rows: list[dict[str, object]] = []
        total_packets = 0
        errors: list[CaptureError] = []
        anomaly_counts: dict[tuple[str, str], int] = {}
        readable = [s for s in sources if not isinstance(s, SkippedPath)]
        for source in sources:
            name = source.name
            if isinstance(source, SkippedPath):  # never silently: a warning, an anomalies row, a sources row
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
            try:
                for batch in source.batches():
                    for p in batch.problems:
                        if strict and p.fatal_in_strict:
                            raise CaptureError(p.source, p.offset, strict_detail(p))
                        status, problem, offset = "partial", p.detail, p.offset
                        collector.anomaly(source=name, layer="source", kind=p.kind, detail=p.detail,
                                          offset=p.offset, count=1)
                        on_problem(p)
                    if batch.secrets:  # pcapng Decryption Secrets Blocks: before the packets they decrypt
                        collector.add_secrets(name, batch.secrets)
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
                    for ended in table.feed(decoded):
                        collector.add(ended)
                        ended.payloads.clear()  # dissected: free them before the next export is made
                    _memory_events(table, collector, name)
            except CaptureError as exc:
                if strict:
                    raise
                errors.append(exc)
                if len(readable) > 1:  # alone, it is raised below; among others, say so and go on
                    on_problem(Problem(source=name, offset=exc.offset, kind="unreadable", detail=exc.message))
                status, problem, offset = "failed" if packets == 0 else "partial", exc.message, exc.offset
                collector.anomaly(source=name, layer="source", kind="unreadable", detail=exc.message,
                                  offset=exc.offset, count=1)
            total_packets += packets
            rows.append({"source": name, "packets": packets, "status": status, "problem": problem,
                         "offset": offset})
        for ended in table.flush_iter():
            collector.add(ended)
            ended.payloads.clear()
        last = readable[-1].name if readable else ""
        _memory_events(table, collector, last)
        for kind, _count, detail in memory_summary(table, options.flows.memory_budget):
            on_problem(Problem(source=last, offset=None, kind=kind, detail=detail))
        if table.evicted:
            detail = (f"{table.evicted} flows ended early: more than {_limit_reason(table, options)} live "
                      "(their later packets start new flows)")
            collector.anomaly(source=readable[-1].name, layer="flow", kind="flows_evicted", count=table.evicted,
                              detail=detail)
            on_problem(Problem(source=readable[-1].name, offset=None, kind="flows_evicted", detail=detail))
        for (name, kind), cnt in anomaly_counts.items():
            collector.anomaly(source=name, layer="decode", kind=kind, detail=f"{cnt} packets", count=cnt)
        if total_packets == 0 and errors:
            if len(errors) == 1:
                raise errors[0]
            raise CaptureError(errors[0].path, errors[0].offset,
                               f"{errors[0].message} (and {len(errors) - 1} more unreadable captures)")
        stats: dict[str, object] = {"packets": total_packets, "packets_not_ip": int(table.G[7]),
                                    "files": len(readable)}
        return collector.finish(rows, stats)


def _limit_reason(table: FlowTable, options: Options) -> str:
    if table.record_limit < options.flows.max_flows:
        return (f"{table.record_limit}, what the memory budget of {options.flows.memory_budget} bytes allows "
                f"(below max_flows={options.flows.max_flows}),")
    return f"max_flows={options.flows.max_flows}"


def _memory_events(table: FlowTable, collector: Collector, source: str) -> None:
    """The memory budget's decisions since the last call, each an anomalies row."""
    if table.memory_events:
        for kind, count, detail in table.memory_events:
            collector.anomaly(source=source, layer="flow", kind=kind, detail=detail, count=count, offset=None)
        table.memory_events.clear()


def memory_summary(table: FlowTable, budget: int) -> list[tuple[str, int, str]]:
    """One line per kind of memory-budget decision of the run (for stderr: not one per decision)."""
    out = []
    if table.budget_lowered_to:
        out.append(("payload_budget_lowered", 1,
                    f"the memory budget ({budget} bytes) lowered the payload budget to {table.budget_lowered_to} "
                    f"bytes per flow and direction (was {table.budget}); see the anomalies"))
    if table.memory_evicted:
        out.append(("flows_ended_memory", table.memory_evicted,
                    f"{table.memory_evicted} flows ended early to stay within the memory budget ({budget} bytes), "
                    "those holding the most payload; see the anomalies"))
    return out
