"""CPU seconds of the Dask engine against the serial engine on the same captures (issue 15).

Wall times mean little on a shared machine (and with Linux autogroup scheduling a second process
of the same session gains nothing under others' load), so this counts CPU: `time.process_time()`
of the driver, of each worker process and of the scheduler, around one analysis each.

    python bench/dask_cpu.py FILE... [--workers 2] [--repeat 1] [--output driver|dataset]

The projection printed for a quiet machine with `workers` cores: max(worker CPU) + the driver's
CPU after the tasks (its sequential tail), against the serial CPU. `--output dataset`: the flows
go to a Parquet dataset written by the workers (DaskEngine(output=Dataset(...)), partitioned by
date and vantage) instead of back to the driver, against the serial engine writing the same flows
to one Parquet file (`--output driver`, the default: both build the flows frame in memory).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _cpu() -> float:
    return time.process_time()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--no-serial", action="store_true")
    ap.add_argument("--output", choices=["driver", "dataset"], default="driver")
    args = ap.parse_args()
    import shutil
    import tempfile

    import dask
    from distributed import Client, LocalCluster

    import analyzer
    from analyzer.engines.dask import QUIET_WORKERS, DaskEngine
    from analyzer.engines.dask_output import Dataset

    def quiet(p: object) -> None:
        pass

    scratch = tempfile.mkdtemp(prefix="dask-cpu-")

    def serial_run(files: list[str]) -> int:
        if args.output == "driver":
            return len(analyzer.analyze(files, on_problem=quiet).flows)
        from analyzer.dissect import ALL
        from analyzer.pipeline import FRAME_ORDER
        from analyzer.report.stream import open_output

        with open_output("parquet", os.path.join(scratch, "serial.parquet"), ALL["flows"],
                         sort_by=FRAME_ORDER["flows"]) as sink:
            analyzer.analyze(files, on_problem=quiet, frames=("flows",), sinks={"flows": sink})
        return sink_rows(os.path.join(scratch, "serial.parquet"))

    def dask_run(client: object, files: list[str]) -> tuple[DaskEngine, int]:
        if args.output == "driver":
            engine = DaskEngine(client)
            return engine, len(analyzer.analyze(files, on_problem=quiet, engine=engine).flows)
        out = tempfile.mkdtemp(prefix="ds-", dir=scratch)
        os.rmdir(out)
        engine = DaskEngine(client, output=Dataset(out, frame="flows"))
        result = analyzer.analyze(files, on_problem=quiet, frames=("flows",), engine=engine)
        return engine, int(result.stats["rows_written"].get("flows", 0))  # type: ignore[union-attr]

    serial_cpu = None
    if not args.no_serial:
        serial_run(args.files[:1])  # warm the kernels
        c0 = _cpu()
        n = serial_run(args.files)
        serial_cpu = _cpu() - c0
        print(f"serial: {serial_cpu:.2f} CPU-s, {n} flows ({args.output})")
    with dask.config.set(QUIET_WORKERS), LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                                      processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        dask_run(client, args.files[:1])  # warm
        for _ in range(args.repeat):
            w0 = client.run(_cpu)
            s0 = client.run_on_scheduler(_cpu)
            c0, t0 = _cpu(), time.perf_counter()
            engine, n = dask_run(client, args.files)
            driver, wall = _cpu() - c0, time.perf_counter() - t0
            w1 = client.run(_cpu)
            sched = client.run_on_scheduler(_cpu) - s0
            workers = {w: round(w1[w] - w0[w], 2) for w in w0}
            tail = round(_cpu() - engine.tasks_done_cpu, 2)
            print(f"dask: driver {driver:.2f} CPU-s (tail after the tasks {tail} CPU-s), workers "
                  f"{sorted(workers.values())}, scheduler {sched:.2f}, wall {wall:.1f} s, {n} flows; "
                  f"{engine.last_run}")
            proj = max(workers.values()) + float(tail)  # type: ignore[arg-type]
            if serial_cpu:
                print(f"  projection on a quiet {args.workers}-core machine: {proj:.2f} s vs serial "
                      f"{serial_cpu:.2f} s = {serial_cpu / proj:.2f}x; worker CPU sum / serial = "
                      f"{sum(workers.values()) / serial_cpu:.2f}")


    shutil.rmtree(scratch, ignore_errors=True)


def sink_rows(path: str) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


if __name__ == "__main__":
    main()
