"""A timeline of one Dask run of `intransit flows` (issue 15): where the wall time between the
driver's launch and its exit goes, beside what each worker was computing.

    python bench/dask_timeline.py FILE... [--partition-by date,vantage] [--repeat 2] [--workers 2]

As `bench/run_bench.py`'s "standing cluster" rows: a LocalCluster of `--workers` processes x 1
thread (the engine's QUIET_WORKERS settings) started here and warmed by one untimed run; the
driver is a separate `python -m analyzer flows FILE... --engine dask --scheduler ADDR --format
parquet --out ...` process, launched through this script's `--driver` mode, which records the
driver's own steps (`DaskEngine.marks`: wall and CPU time at connect, submit, each result, pass 2,
collect) and its exit. The workers' side is the scheduler's task stream (each task's compute
start and stop, by worker). Printed, in seconds from the driver's launch:

- the driver's steps (its start-up: interpreter and imports; connecting; the tasks' results; the
  tail after the last task: boundary keys, merges, writing; the exit);
- each worker's tasks, its idle time inside the run (before its first task, between tasks, after
  its last task until the driver's exit), and how far apart the workers' last tasks end;
- CPU seconds of the driver (rusage of the child), of each worker and of the scheduler (this process).

Wall times on a loaded machine stretch every span; the structure (what waits on what, the idle
gaps, the CPU per process) is what this is for. The same clock (time.time) on every process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# the checkout measured (default: this one): INTRANSIT_REPO=/path/to/other/checkout, with that checkout's
# own Python, times another commit with this script (the driver and the workers import from there)
REPO = os.environ.get("INTRANSIT_REPO", str(HERE.parent))
sys.path.insert(0, REPO)


def driver(out: str, argv: list[str]) -> None:
    """The measured driver: `python -m analyzer ARGV` with the engine's marks written to `out` at exit."""
    start = time.time()
    import atexit

    from analyzer.engines import dask as engine_module

    engines: list[object] = []
    init = engine_module.DaskEngine.__init__

    def keep(self: object, *a: object, **k: object) -> None:
        init(self, *a, **k)  # type: ignore[arg-type]
        engines.append(self)

    engine_module.DaskEngine.__init__ = keep  # type: ignore[method-assign]

    def dump() -> None:
        eng = engines[-1] if engines else None
        with open(out, "w") as f:
            json.dump({"start": start, "imported": imported, "exit": time.time(), "cpu_exit": time.process_time(),
                       "marks": getattr(eng, "marks", []), "last_run": getattr(eng, "last_run", {})}, f, default=str)

    atexit.register(dump)
    imported = time.time()
    sys.argv = ["intransit", *argv]
    from analyzer.cli import run

    run()


def _cpu() -> float:
    return time.process_time()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--partition-by", default=None, help="date,vantage: the dataset row")
    ap.add_argument("--json", default=None, help="also write the raw timelines here")
    ap.add_argument("--serial", action="store_true",
                    help="also time the serial engine's run of the same command (CPU from rusage), and print "
                         "the projection: serial CPU / (driver CPU before the tasks + the busiest worker's CPU "
                         "+ driver CPU after the last result)")
    args = ap.parse_args()
    import dask
    from distributed import Client, LocalCluster

    from analyzer.engines.dask import QUIET_WORKERS

    scratch = Path(tempfile.mkdtemp(prefix="dask-timeline-"))
    with dask.config.set(QUIET_WORKERS):
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = Client(cluster)
    addr = cluster.scheduler_address
    names = {w: f"w{i}" for i, w in enumerate(sorted(client.scheduler_info()["workers"]))}

    def launch(files: list[str], k: int) -> tuple[float, float, float, dict[str, object]]:
        out = scratch / f"out{k}.parquet"
        extra = ["--partition-by", args.partition_by] if args.partition_by else []
        marks = scratch / f"marks{k}.json"
        argv = [sys.executable, __file__, "--driver", str(marks), "flows", *files, "--engine", "dask", "--scheduler",
                addr, *extra, "--format", "parquet", "--out", str(out)]
        t0 = time.time()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        t1 = time.time()
        err = proc.stderr.read().decode() if proc.stderr else ""
        if status != 0:
            print(err, file=sys.stderr)
        return t0, t1, usage.ru_utime + usage.ru_stime, json.loads(marks.read_text()) if marks.exists() else {}

    serial_cpu = None
    if args.serial:
        argv = [sys.executable, "-m", "analyzer", "flows", *args.files, "--format", "parquet", "--out",
                str(scratch / "serial.parquet")]
        t0 = time.time()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
        _, _, usage = os.wait4(proc.pid, 0)
        serial_cpu = usage.ru_utime + usage.ru_stime
        print(f"serial engine: wall {time.time() - t0:.3f} s, CPU {serial_cpu:.2f} s (load average "
              f"{os.getloadavg()[0]:.1f})")
    launch(args.files[:1], 0)  # warm the workers
    client.get_task_stream()  # starts the scheduler's task-stream recording
    runs = []
    for k in range(1, args.repeat + 1):
        w0, s0 = client.run(_cpu), _cpu()
        load = os.getloadavg()[0]
        t0, t1, dcpu, drv = launch(args.files, k)
        w1, s1 = client.run(_cpu), _cpu()
        time.sleep(0.2)
        stream = client.get_task_stream(start=t0 - 0.1, stop=t1 + 0.1)
        runs.append({"t0": t0, "t1": t1, "driver_cpu": dcpu, "driver": drv, "load": load,
                     "workers_cpu": {names.get(w, w): w1[w] - w0[w] for w in w0}, "scheduler_cpu": s1 - s0,
                     "tasks": [{"key": str(t["key"]), "worker": names.get(t["worker"], t["worker"]),
                                "startstops": [dict(s) for s in t["startstops"]]} for t in stream]})
        report(runs[-1], serial_cpu)
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1, default=str))
    client.close()
    cluster.close()


def report(run: dict, serial_cpu: float | None = None) -> None:  # type: ignore[type-arg]
    t0, t1 = run["t0"], run["t1"]
    drv = run["driver"]

    def at(t: float) -> str:
        return f"{t - t0:7.3f}"

    print(f"\n=== run: wall {t1 - t0:.3f} s, load average {run['load']:.1f} at the start")
    print("driver:")
    if drv:
        print(f"  {at(drv['start'])}  interpreter up (python started, before any import)")
        cpu0 = None
        for what, wall, cpu in drv["marks"]:
            cpu0 = cpu if cpu0 is None else cpu0
            print(f"  {at(wall)}  {what:<14} driver CPU {cpu:6.2f} s")
        print(f"  {at(drv['exit'])}  atexit (CPU {drv['cpu_exit']:.2f} s)")
    print(f"  {at(t1)}  process ended; driver CPU (rusage) {run['driver_cpu']:.2f} s")
    by: dict[str, list[tuple[float, float, str]]] = {}
    for t in run["tasks"]:
        for s in t["startstops"]:
            if s["action"] == "compute":
                name = t["key"].split("-")[0] if not t["key"].startswith("intransit-part") else t["key"]
                by.setdefault(t["worker"], []).append((s["start"], s["stop"], name))
    ends = {}
    for w in sorted(by):
        spans = sorted(by[w])
        busy = sum(b - a for a, b, _ in spans)
        idle_between = sum(max(0.0, spans[i + 1][0] - spans[i][1]) for i in range(len(spans) - 1))
        ends[w] = max(b for _, b, _ in spans)
        print(f"{w}: CPU {run['workers_cpu'].get(w, 0):.2f} s, busy {busy:.3f} s; idle: before first task "
              f"{spans[0][0] - t0:.3f}, between tasks {idle_between:.3f}, after last task {t1 - ends[w]:.3f}")
        for a, b, name in spans:
            if b - a > 0.002:
                print(f"  {at(a)} - {at(b)}  {b - a:6.3f}  {name}")
    if len(ends) > 1:
        print(f"last tasks end {max(ends.values()) - min(ends.values()):.3f} s apart; scheduler CPU "
              f"{run['scheduler_cpu']:.2f} s (this process, with its client)")
    marks = drv.get("marks") if drv else None
    results = [cpu for what, _, cpu in marks or [] if what.startswith("result")]
    submitted = [cpu for what, _, cpu in marks or [] if what == "submitted"]
    if results and submitted:
        before, after = submitted[0], run["driver_cpu"] - max(results)
        busiest = max(run["workers_cpu"].values())
        print(f"sequential driver CPU: {before:.2f} s before the tasks (start-up, imports, connect) + {after:.2f} s "
              f"after the last result (boundary, merge, output, exit); busiest worker {busiest:.2f} s")
        if serial_cpu:
            print(f"projection (CPU, load-independent): serial {serial_cpu:.2f} / ({before:.2f} + {busiest:.2f} + "
                  f"{after:.2f}) = {serial_cpu / (before + busiest + after):.2f}x")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--driver":
        driver(sys.argv[2], sys.argv[3:])
    else:
        main()
