"""Test helper: compare two analyses frame by frame, as equal sets of rows (engines order rows differently)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd

BENCH = Path(os.environ.get("INTRANSIT_BENCH", Path(__file__).resolve().parents[3] / "shared" / "bench"))
if not BENCH.is_dir():
    BENCH = Path("/work/shared/bench")

# Per-run values: the credentials fingerprint is keyed by a random key of each run (compared as a
# grouping instead: the same rows share a fingerprint in both runs).
PER_RUN = {"credentials": ("secret_fingerprint",)}


def _canonical(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object:
            out[c] = out[c].map(repr)
    return out.sort_values(list(out.columns), kind="mergesort").reset_index(drop=True)


def differences(a: Any, b: Any) -> list[str]:
    """What differs between analyses `a` and `b`: frame names, stats, and each frame's rows after
    sorting (dtypes included); empty when they are equal."""
    out = []
    if a.frame_names != b.frame_names:
        out.append(f"frames {a.frame_names} != {b.frame_names}")
    if a.stats != b.stats:
        out.append(f"stats {a.stats} != {b.stats}")
    for name in a.frame_names:
        x, y = a[name], b[name]
        per_run = [c for c in PER_RUN.get(name, ()) if c in x.columns]
        if per_run:
            for c in per_run:
                if x[c].nunique(dropna=False) != y[c].nunique(dropna=False):
                    out.append(f"{name}.{c}: {x[c].nunique()} distinct values, {y[c].nunique()} distinct")
            x, y = x.drop(columns=per_run), y.drop(columns=per_run)
        try:
            pd.testing.assert_frame_equal(_canonical(x), _canonical(y))
        except AssertionError as exc:
            out.append(f"{name}: {str(exc)[:400]}")
        if list(x.dtypes) != list(y.dtypes):
            out.append(f"{name}: dtypes {list(x.dtypes)} != {list(y.dtypes)}")
    return out


def bench_capture(path: Path, packets: int, start_time: float | None = None) -> Path | None:
    """A benchmark capture made by ../shared/bench/make_pcap.py (seed 1), or None without it."""
    make = BENCH / "make_pcap.py"
    if not make.is_file():
        return None
    cmd = [sys.executable, str(make), "-o", str(path), "--packets", str(packets), "--seed", "1"]
    if start_time is not None:
        cmd += ["--start-time", str(start_time)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return path


def quiet(p: object) -> None:
    """on_problem for runs whose problems are compared as rows, not warnings."""


def run(paths: Any, engine: Any = None, **kw: Any) -> Any:
    """analyze() of these paths with their problems kept as rows only (the engine tests compare them)."""
    import analyzer

    return analyzer.analyze([str(p) for p in paths], on_problem=quiet, engine=engine, **kw)


def failing_captures(good: Path, tmp: Path) -> list[Path]:
    """`good`, a copy of its first record followed by a record that claims 2 GiB (read partly), and a
    file cut inside its header (fails): what a run over a damaged archive meets."""
    import struct

    from support.pcap_helpers import pcap_records

    header, records = pcap_records(good)
    bad = tmp / "damaged.pcap"
    bad.write_bytes(header + records[0] + struct.pack("<IIII", 1, 0, 0x7FFFFFFF, 60) + b"\x00" * 60)
    unreadable = tmp / "unreadable.pcap"
    unreadable.write_bytes(header[:20])
    return [good, bad, unreadable]
