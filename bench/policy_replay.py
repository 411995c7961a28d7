"""The streamed audit's policy stage alone, replayed: a steadier measure of its CPU time than a whole run.

    python bench/policy_replay.py record CAPTURE FILE     # one audit_stream run; keeps what the stage was fed
    python bench/policy_replay.py time FILE [--repeat 7]  # feeds it to fresh stages; min and median CPU s
    python bench/policy_replay.py instructions FILE [--tree T]   # callgrind: a first and a second replay's instructions

`record` wraps PolicyStage.on_rows / on_flows during one streamed audit (--vpc 10.0.0.0/8, default
profile) and pickles every call in order (the row dicts, the Arrow flow chunks). `time` replays
them into a new PolicyStage per repeat and prints one JSON line: CPU seconds of the replay (min and
median over the repeats: on this shared machine the minimum is the least disturbed run), split
into on_rows and on_flows, and the stage's own timings (zones, rules, judge) of the fastest repeat.
The dissection is not in it, so a change to the stage shows without the run's noise around it.

`instructions` counts, with callgrind (bench/instructions.py), the instructions of processes that
load FILE and replay it 0, 1 and 2 times: the differences are the first replay of a process (as
in a real audit: pandas' first calls, lazy imports and allocations included) and a second one.
Counts do not drift with the machine's load (about 50x the replay's time under valgrind).
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's analyzer

VPC = ["10.0.0.0/8"]
NOW = "2026-12-06"


def record(capture: Path, dest: Path) -> None:
    from analyzer.auditor import audit_stream
    from analyzer.policy.stage import PolicyStage

    calls: list[tuple[str, Any]] = []
    on_rows, on_flows = PolicyStage.on_rows, PolicyStage.on_flows

    def rows(self: PolicyStage, frame: str, uid: str, r: list[dict[str, Any]]) -> None:
        calls.append(("rows", (frame, uid, [dict(x) for x in r])))
        on_rows(self, frame, uid, r)

    def flows(self: PolicyStage, chunk: Any) -> Any:
        calls.append(("flows", dict(chunk)))
        return on_flows(self, chunk)

    PolicyStage.on_rows, PolicyStage.on_flows = rows, flows  # type: ignore[method-assign]
    try:
        audit_stream([str(capture)], vpc=VPC, now=NOW, findings_sink=_Count(), on_problem=lambda p: None)
    finally:
        PolicyStage.on_rows, PolicyStage.on_flows = on_rows, on_flows  # type: ignore[method-assign]
    dest.write_bytes(pickle.dumps(calls, protocol=5))
    print(f"recorded {sum(c == 'rows' for c, _ in calls)} row calls, {sum(c == 'flows' for c, _ in calls)} chunks")


class _Count:
    def __init__(self) -> None:
        self.rows = 0

    def write(self, chunk: Any) -> None:
        self.rows += len(chunk)

    def write_table(self, table: Any) -> None:  # the CLI's sinks take Arrow tables: so does this
        self.rows += len(table)


def replay(calls: list[tuple[str, Any]]) -> dict[str, Any]:
    from analyzer.config import FlowOptions
    from analyzer.policy.stage import PolicyStage

    flow = FlowOptions()
    sink = _Count()
    stage = PolicyStage(zones=VPC, now=NOW, findings_sink=sink,
                        horizon_s=float(flow.active_timeout) + float(flow.idle_timeout_tcp) + 300.0)
    spent = {"rows": 0.0, "flows": 0.0}
    for kind, args in calls:
        t = time.process_time()
        if kind == "rows":
            stage.on_rows(*args)
        else:
            stage.on_flows(args)
        spent[kind] += time.process_time() - t
    t = time.process_time()
    stage.finish()
    stage.destinations()
    spent["flows"] += time.process_time() - t
    return {"total": spent["rows"] + spent["flows"], **spent, "timings": dict(stage.timings), "findings": sink.rows}


def _replays(file: Path, n: int, tree: Path) -> None:
    """Load FILE, then replay it `n` times with `tree`'s analyzer (the process callgrind counts)."""
    sys.path.insert(0, str(tree))
    from analyzer._pandas import pd  # noqa: F401  (imported before the stage runs in any audit)
    from analyzer.policy.evaluate import _default_zones  # noqa: F401

    calls = pickle.loads(file.read_bytes())
    for _ in range(n):
        replay(calls)


def instructions(file: Path, tree: Path) -> dict[str, Any]:
    from instructions import callgrind  # bench/instructions.py

    here = Path(__file__).resolve()
    counts = [callgrind(tree, [str(here), "_replays", str(file), str(n), str(tree)], "policy_replay")
              for n in (0, 1, 2)]
    return {"first_replay_Minstr": round((counts[1] - counts[0]) / 1e6),
            "second_replay_Minstr": round((counts[2] - counts[1]) / 1e6), "load_Minstr": round(counts[0] / 1e6)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["record", "time", "instructions", "_replays"])
    ap.add_argument("args", nargs="+")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--tree", type=Path, default=ROOT, help="instructions: the checkout whose analyzer replays")
    a = ap.parse_args()
    if a.action == "record":
        record(Path(a.args[0]), Path(a.args[1]))
        return 0
    if a.action == "_replays":
        _replays(Path(a.args[0]), int(a.args[1]), Path(a.args[2]).resolve())
        return 0
    if a.action == "instructions":
        print(json.dumps({"tree": str(a.tree), **instructions(Path(a.args[0]).resolve(), a.tree.resolve())}))
        return 0
    calls = pickle.loads(Path(a.args[0]).read_bytes())
    replay(calls)  # warm: imports, the zone map, pandas' first calls
    runs = [replay(calls) for _ in range(a.repeat)]
    best = min(runs, key=lambda r: r["total"])
    print(json.dumps({
        "stage_cpu_s_min": round(best["total"], 3),
        "stage_cpu_s_median": round(statistics.median(r["total"] for r in runs), 3),
        "on_rows_cpu_s": round(best["rows"], 3), "on_flows_cpu_s": round(best["flows"], 3),
        **{f"{k}_cpu_s": round(v, 3) for k, v in best["timings"].items()},
        "findings": best["findings"], "repeat": a.repeat,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
