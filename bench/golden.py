"""Golden comparison: every frame of every capture, before and after a change that must not move a value.

    python bench/golden.py save /tmp/golden-before        # on the old commit
    python bench/golden.py compare /tmp/golden-before     # on the new one: lists every difference

Each capture of `captures/` and of `../shared/corpus/pcaps` (recursively) is analysed on its own
with the default options, all frames built, plus a flows-only run (`frames=("flows",)`, the path
`intransit flows` takes, whose TLS dissector skips the tls/certs rows) whose flows frame is kept
too. Frames are pickled (exact dtypes and values). `compare` reports per capture and frame: missing
or extra columns, row counts, and the columns whose values differ (with the first differing row).
Columns added after the saved run are listed as new, not as differences: a structural change may
add columns, never change the old ones. Exit status 1 when anything differs.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's analyzer, not an editable install's
CORPUS = ROOT.parent / "shared" / "corpus" / "pcaps"
SUFFIXES = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz", ".gz", ".zst")


def captures() -> list[Path]:
    found = sorted(p for p in (ROOT / "captures").iterdir() if p.is_file() and p.name.endswith(SUFFIXES))
    if CORPUS.is_dir():
        found += sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))
    return found


def frames_of(path: Path) -> dict[str, object]:
    import analyzer

    out: dict[str, object] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            full = analyzer.analyze([str(path)])
            names = [n for n in ("flows", "tls", "certs", "cert_links", "anomalies", "sources")]
            out = {name: getattr(full, name) for name in names}
            out["flows_only"] = analyzer.analyze([str(path)], frames=("flows",)).flows
            for frame in out.values():  # the checkout's own path is not a value (worktrees differ)
                if "source" in frame.columns:
                    frame["source"] = frame["source"].str.replace(str(ROOT) + "/", "", regex=False)
        except Exception as exc:  # an unreadable capture is a result too
            out = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def key(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return "corpus/" + str(path.relative_to(CORPUS))


def save(dest: Path) -> None:
    result = {key(p): frames_of(p) for p in captures()}
    dest.write_bytes(pickle.dumps(result))
    print(f"saved {len(result)} captures to {dest}")


def differences(name: str, old: object, new: object, *, added_columns: bool = True) -> list[str]:
    """What differs between two saved values (frames: column by column, with the first differing row).
    New columns are allowed (a structural change may add them; compare() lists them once) unless
    `added_columns` is False, for outputs whose columns are fixed (bench/audit_golden.py)."""
    import pandas as pd

    if not isinstance(old, pd.DataFrame) or not isinstance(new, pd.DataFrame):
        return [] if old == new else [f"{name}: {old!r} != {new!r}"]
    problems = []
    missing = [c for c in old.columns if c not in new.columns]
    added = [c for c in new.columns if c not in old.columns]
    if missing:
        problems.append(f"{name}: columns gone: {missing}")
    if added and not added_columns:
        problems.append(f"{name}: columns added: {added}")
    elif list(old.columns) != [c for c in new.columns if c in old.columns] and not added_columns:
        problems.append(f"{name}: columns {list(old.columns)} -> {list(new.columns)}")
    if len(old) != len(new):
        return [*problems, f"{name}: {len(old)} rows before, {len(new)} after"]
    for col in old.columns:
        if col not in new.columns:
            continue
        a, b = old[col].reset_index(drop=True), new[col].reset_index(drop=True)
        if str(a.dtype) != str(b.dtype):
            problems.append(f"{name}.{col}: dtype {a.dtype} -> {b.dtype}")
            continue
        same = (a == b).fillna(False) | (a.isna() & b.isna())
        if not bool(same.all()):
            i = int((~same).to_numpy().nonzero()[0][0])
            problems.append(f"{name}.{col}: {int((~same).sum())} rows differ, first row {i}: {a[i]!r} -> {b[i]!r}")
    return problems


def compare(src: Path) -> int:
    before = pickle.loads(src.read_bytes())
    now = {key(p): p for p in captures()}
    bad = 0
    for name in sorted(set(before) | set(now)):
        if name not in now:
            print(f"{name}: capture gone")
            bad += 1
            continue
        if name not in before:
            print(f"{name}: new capture (not compared)")
            continue
        after = frames_of(now[name])
        problems = []
        for frame in sorted(set(before[name]) | set(after)):
            problems += differences(frame, before[name].get(frame), after.get(frame))
        if problems:
            bad += 1
            print(f"{name}:")
            for p in problems:
                print(f"  {p}")
    print(f"{len(before)} captures compared, {bad} differ")
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["save", "compare"])
    parser.add_argument("file", type=Path)
    args = parser.parse_args()
    if args.action == "save":
        save(args.file)
        return 0
    return compare(args.file)


if __name__ == "__main__":
    sys.exit(main())
