"""Instructions (callgrind) of `intransit audit` beside `intransit flows` (all dissection): issue 12 §6 without noise.

    python bench/policy_instructions.py                        this tree, bench_200k
    python bench/policy_instructions.py --tree /other/checkout --capture bench/data/bench_1000k_first1000.pcap

Runs, for each tree, `python -m analyzer flows CAPTURE --format parquet` and `python -m analyzer
audit CAPTURE --vpc 10.0.0.0/8 --fail-on never --format parquet` (the commands bench/run_bench.py
times) under callgrind and prints their instruction counts and the audit's share of flows'
throughput (flows' instructions / audit's). The audit is run once before it is counted, so the
zone map's disk cache is warm as in any run but a machine's first. Like bench/instructions.py:
counts do not drift with the machine's load; they ignore cache misses, page faults and the kernel.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from instructions import callgrind, tree_env

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
AUDIT = ["--vpc", "10.0.0.0/8", "--fail-on", "never"]


def _args(command: str, capture: Path, out: str) -> list[str]:
    extra = AUDIT if command == "audit" else []
    return ["-m", "analyzer", command, str(capture), *extra, "--format", "parquet", "--out", out]


def count(tree: Path, capture: Path, command: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = f"{tmp}/{command}.parquet"
        if command == "audit":  # warm the zone map cache
            subprocess.run([os.path.realpath(sys.executable), *_args(command, capture, out)], cwd=tree,
                           env=tree_env(tree), capture_output=True, check=False)
        return callgrind(tree, _args(command, capture, out), f"policy_instructions: {command}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture", type=Path, default=HERE / "data" / "bench_200k.pcap")
    ap.add_argument("--tree", type=Path, action="append", default=[], help="another checkout (repeatable)")
    ap.add_argument("--only", choices=["flows", "audit"], default=None, help="count one command only")
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        print("policy_instructions: valgrind is not installed (apt install valgrind)", file=sys.stderr)
        return 2
    if not args.capture.is_file():
        print(f"policy_instructions: {args.capture} not found (bench/run_bench.py --quick builds it)", file=sys.stderr)
        return 2
    commands = [args.only] if args.only else ["flows", "audit"]
    print(f"{args.capture.name}: instructions (callgrind), M")
    for tree in [REPO, *args.tree]:
        n = {c: count(tree.resolve(), args.capture.resolve(), c) for c in commands}
        line = "  ".join(f"{c} {v / 1e6:,.0f}" for c, v in n.items())
        if len(n) == 2:
            line += f"  audit/flows throughput {n['flows'] / n['audit']:.1%}"
        print(f"  {line}  {tree}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
