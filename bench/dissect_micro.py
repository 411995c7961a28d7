"""Time the Python side of dissection on the benchmark capture, stage by stage (a profiling aid).

The end-to-end benchmark (run_bench.py) says how fast `intransit flows` is; this says where the
Python time goes once the kernels have produced the ended flows, without a profiler's overhead:

  read+flows read, decode, FlowTable.update/flush: ended-flow columns + FlowPayload objects
  dissect    _Dissection.run over every FlowPayload (TLS/QUIC/DTLS/... dissectors)
  collect    Collector.add + finish: facts joined into frames

Usage: python bench/dissect_micro.py [CAPTURE] [--packets N] [--repeat R]
Prints the median (min-max) seconds of each stage and microseconds per flow / per TLS session.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("capture", nargs="?", default=str(HERE / "data" / "bench_200k.pcap"))
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    import analyzer
    from analyzer.decode import DecodeOptions, decode
    from analyzer.dissect import DissectContext, registered
    from analyzer.flows.table import FlowTable
    from analyzer.pipeline import Collector, Options, Plan, _Dissection
    from analyzer.sources.readers import read_capture

    analyzer.warm_up()
    opts = Options()
    registered()  # the built-in dissectors load before the clock starts
    times: dict[str, list[float]] = {"read+flows": [], "dissect": [], "collect": []}
    n_flows = n_payloads = n_tls = 0
    for _ in range(args.repeat):
        t1 = time.perf_counter()
        table = FlowTable(opts.flows)
        ended = []
        for batch in read_capture(args.capture):  # batches share a buffer: fold each in at once
            ended.extend(table.update(decode(batch, DecodeOptions())))
        ended.extend(table.flush())
        t2 = time.perf_counter()
        plan = Plan.make(opts)
        diss = _Dissection(plan.dissectors, DissectContext(opts.dissect, plan.wanted))
        facts = [(fp, diss.run(fp)) for e in ended for fp in e.payloads]
        t3 = time.perf_counter()
        no_dissect = opts.with_values(dissect=False)
        coll = Collector(no_dissect, Plan.make(no_dissect))
        for e in ended:
            coll.add(e)
        for fp, f in facts:
            if f is not None:
                coll._rows(fp, f)
        res = coll.finish([], {})
        t4 = time.perf_counter()
        for k, v in zip(times, (t2 - t1, t3 - t2, t4 - t3), strict=True):
            times[k].append(v)
        n_flows = sum(len(e) for e in ended)
        n_payloads = len(facts)
        n_tls = len(res.tls)
    print(f"{args.capture}: {n_flows:,} flows, {n_payloads:,} with payload, {n_tls:,} TLS sessions; "
          f"median (min-max) of {args.repeat}")
    for k, v in times.items():
        med = statistics.median(v)
        per = f"{med / max(n_payloads, 1) * 1e6:7.1f} µs/flow with payload"
        if k == "dissect":
            per += f", {med / max(n_tls, 1) * 1e6:.1f} µs/TLS session"
        print(f"  {k:12s} {med:6.3f} s ({min(v):.3f}-{max(v):.3f})  {per}")



if __name__ == "__main__":
    main()
