"""Count the instructions `intransit flows` executes, with callgrind: a noise-free measure of work.

This machine's wall-clock times drift by 20-30% between consecutive runs of the same command, so a
change worth 5% cannot be seen in run_bench.py's medians without many rounds. The instructions a
run executes do not drift: compare them before and after a change (run_bench.py stays the judge of
speed against the peers; instructions ignore cache misses, page faults and the kernel's time).

  python bench/instructions.py                       this tree, bench_200k, all dissection
  python bench/instructions.py --no-dissect          the flows stage
  python bench/instructions.py --tree /path/to/other/checkout --capture bench/data/bench_1000k.pcap

Another tree (a `git worktree add` of an older commit) needs its own AOT kernels first:
`cd TREE && python -c "import analyzer; analyzer.warm_up()"`. Needs valgrind (apt install
valgrind); takes about 50x the run's time (about 70 s for bench_200k).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def tree_env(tree: Path) -> dict[str, str]:
    """The environment of a run of `tree`'s analyzer: the real interpreter does not know a venv's
    packages by itself, so they are named beside the tree."""
    import site

    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), *site.getsitepackages()])}


def callgrind(tree: Path, args: list[str], who: str = "instructions") -> int:
    """Instructions of one `python ARGS` process run in `tree` under callgrind (the interpreter
    itself: a pyenv shim is a shell script valgrind would measure instead)."""
    # byte-compiled first, as `make setup` does: a stale .pyc under PYTHONDONTWRITEBYTECODE=1 would be
    # compiled from source at every start and counted
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "analyzer")], capture_output=True, check=False)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/callgrind.out",
               os.path.realpath(sys.executable), *args]
        proc = subprocess.run(cmd, cwd=tree, env=tree_env(tree), capture_output=True, text=True, check=False)
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode != 0 or found is None:
        raise SystemExit(f"{who}: the run in {tree} failed:\n{proc.stderr[-2000:]}")
    return int(found.group(1))


def count(tree: Path, capture: Path, extra: list[str]) -> int:
    """Instructions of one `python -m analyzer flows CAPTURE --format parquet` run in `tree`."""
    with tempfile.TemporaryDirectory() as tmp:
        return callgrind(tree, ["-m", "analyzer", "flows", str(capture), *extra, "--format", "parquet",
                                "--out", f"{tmp}/flows.parquet"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture", type=Path, default=HERE / "data" / "bench_200k.pcap")
    ap.add_argument("--tree", type=Path, action="append", default=[],
                    help="another checkout to measure beside this one (repeatable)")
    ap.add_argument("--no-dissect", action="store_true", help="measure the flows stage only")
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        print("instructions: valgrind is not installed (apt install valgrind)", file=sys.stderr)
        return 2
    if not args.capture.is_file():
        print(f"instructions: {args.capture} not found (bench/run_bench.py --quick builds it)", file=sys.stderr)
        return 2
    extra = ["--no-dissect"] if args.no_dissect else []
    trees = [REPO, *args.tree]
    results = [(tree, count(tree.resolve(), args.capture.resolve(), extra)) for tree in trees]
    base = results[0][1]
    print(f"intransit flows {args.capture.name}{' --no-dissect' if extra else ''}: instructions (callgrind)")
    for tree, n in results:
        print(f"  {n / 1e6:10,.0f} M  {n / base:6.3f} x this tree  {tree}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
