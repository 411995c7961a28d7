"""The per-flow cost of each dissector on a capture: its probe on every flow with payload, and its
dissect on the flows it claims (as the engine would choose: port hints first, then content probes).

Usage: python bench/dissect_per_protocol.py [CAPTURE] [--repeat R]
Prints, per dissector: flows claimed, microseconds per probe (over every TCP/UDP flow of its
transports) and per dissect (median of R runs, each over the same flows).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # this checkout's analyzer, not an editable install's


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("capture", nargs="?", default=str(HERE / "data" / "bench_200k.pcap"))
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    from analyzer.decode import DecodeOptions, decode
    from analyzer.dissect import DissectContext
    from analyzer.flows.table import FlowTable
    from analyzer.pipeline import Options, Plan, _Dissection
    from analyzer.sources.readers import read_capture

    opts = Options()
    table = FlowTable(opts.flows)
    ended = []
    for batch in read_capture(args.capture):
        ended.extend(table.update(decode(batch, DecodeOptions())))
    ended.extend(table.flush())
    payloads = [fp for e in ended for fp in e.payloads]
    plan = Plan.make(opts)
    diss = _Dissection(plan.dissectors, DissectContext(opts.dissect, plan.wanted))
    claimed: dict[str, list[object]] = {d.name: [] for d in diss.dissectors}
    for fp in payloads:
        first = diss._first_claim(fp)
        if first is not None:
            claimed[first[0].name].append(fp)
    print(f"{args.capture}: {len(payloads):,} flows with payload; median of {args.repeat}")
    print(f"  {'dissector':10} {'claimed':>8} {'probe µs/flow':>14} {'dissect µs/flow':>16}")
    for d in diss.dissectors:
        mine = [fp for fp in payloads if fp.transport in d.transports]
        probe_t, dissect_t = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            for fp in mine:
                d.probe(fp)
            t1 = time.perf_counter()
            for fp in claimed[d.name]:
                d.dissect(fp)
            t2 = time.perf_counter()
            probe_t.append(t1 - t0)
            dissect_t.append(t2 - t1)
        n = len(claimed[d.name])
        probe = statistics.median(probe_t) / max(len(mine), 1) * 1e6
        per = f"{statistics.median(dissect_t) / n * 1e6:16.1f}" if n else f"{'-':>16}"
        print(f"  {d.name:10} {n:8,} {probe:14.2f} {per}")


if __name__ == "__main__":
    main()
