"""Where a streamed audit's time goes: `intransit audit --format parquet` as run_bench runs it, in process.

python bench/policy_stream.py CAPTURE [--vpc 10.0.0.0/8]

Prints one JSON line: CPU seconds of the whole audit_stream call, of the policy stage (on_flows:
converting the chunk, reading the row frames, judging, tallying), of judge() inside it, of the zone
lookup and of the rule predicates inside judge(), the flows, the findings, and the stage's eviction
counters. run_bench.py runs it once beside its timed runs (the numbers are CPU time, so the
machine's load matters less than for wall time).
"""

from __future__ import annotations

import argparse
import json
import time

from analyzer.auditor import audit_stream


class _Count:
    """A findings sink that counts (the timed CLI run writes parquet; this measures the judgement)."""

    def __init__(self) -> None:
        self.rows = 0

    def write(self, chunk: object) -> None:
        self.rows += len(chunk)  # type: ignore[arg-type]

    def write_table(self, table: object) -> None:  # the CLI's sinks take Arrow tables: so does this
        self.rows += len(table)  # type: ignore[arg-type]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("capture")
    ap.add_argument("--vpc", action="append", default=None)
    args = ap.parse_args()
    sink = _Count()
    t0 = time.process_time()
    streamed = audit_stream([args.capture], findings_sink=sink, vpc=args.vpc or ["10.0.0.0/8"],
                            on_problem=lambda p: None)
    total = time.process_time() - t0
    stage = streamed.stage
    print(json.dumps({"audit_stream_cpu_s": round(total, 3),
                      **{f"{k}_cpu_s": round(v, 3) for k, v in stage.timings.items()},
                      "flows": stage.tally.flows, "findings": sink.rows, **stage.stats}))


if __name__ == "__main__":
    main()
