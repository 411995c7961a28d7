"""Audit golden: the policy layer's outputs before and after a change that must not move a value.

    python bench/audit_golden.py save /tmp/audit-before.pkl      # on the old commit
    python bench/audit_golden.py compare /tmp/audit-before.pkl   # on the new one: lists every difference
    python bench/audit_golden.py save F --bench bench/data/bench_200k.pcap   # the benchmark capture too
    python bench/audit_golden.py save /tmp/a-1.pkl --part 1/2 &  (and 2/2)    # in parts, on several cores
    python bench/audit_golden.py diff /tmp/audit-before.pkl /tmp/a-1.pkl /tmp/a-2.pkl   # saved files only

For every capture of `captures/` and of `../shared/corpus/pcaps` (recursively), each analysed on its
own, and under each configuration of `configs()` (every built-in profile with `--vpc 10.0.0.0/8`; the
default profile with a zones file of two zones mapped by VNI / GWLB endpoint, with no zone at all,
and with a suppressions file holding an active and an expired suppression), it keeps

- through `audit()` (the whole analysis judged by `evaluate`): findings, destinations, and the flows'
  policy columns (uid, client_zone, server_zone, direction, verdict, finding_count);
- through the streamed audit (`PolicyStage` on the collector's stage hook, as `audit_stream` runs
  it): the findings the stage made (sorted as `audit()` sorts them), its destinations, its tally,
  and the same flows columns as the stage wrote them.

The analysis itself is made once per capture (all frames), then judged under every configuration:
the facts are `bench/golden.py`'s business. Frames are pickled (exact dtypes and values);
`compare` reports per capture, configuration and frame the columns whose values differ (first
differing row). Exit status 1 when anything differs.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's analyzer, not an editable install's
sys.path.insert(0, str(ROOT / "bench"))
CORPUS = ROOT.parent / "shared" / "corpus" / "pcaps"
NOW = "2026-12-06"
VPC = ["10.0.0.0/8"]
PROFILES = ("sec09", "strict", "nist-800-52r2", "mozilla-intermediate", "pci-dss-4")
FLOW_COLUMNS = ["uid", "client_zone", "server_zone", "direction", "verdict", "finding_count"]

ZONES_TOML = """\
[[zone]]
name = "vpc-a"
cidrs = ["10.0.0.0/9", "fd00::/8"]
vni = [1, 4242]

[[zone]]
name = "vpc-b"
cidrs = ["10.128.0.0/9", "172.16.0.0/12"]
gwlb_endpoint = "0x0A1B2C3D4E5F6071"

[[zone]]
name = "on-prem"
cidrs = ["192.168.0.0/16"]
"""

SUPPRESS_TOML = """\
[[suppress]]
id = "active-443"
rule = "*"
port = [443]
reason = "golden: an active suppression on every port-443 finding"
expires = 2099-12-31

[[suppress]]
id = "active-internet"
rule = "cleartext-egress"
zone = "internet"
reason = "golden: an active suppression by zone glob"
expires = 2099-12-31

[[suppress]]
id = "gone"
rule = "tls-legacy-version"
cidr = ["10.0.0.0/8"]
reason = "golden: an expired suppression"
expires = 2020-01-01
"""


def configs(tmp: Path) -> dict[str, dict[str, Any]]:
    zones = tmp / "zones.toml"
    zones.write_text(ZONES_TOML)
    sups = tmp / "suppress.toml"
    sups.write_text(SUPPRESS_TOML)
    out: dict[str, dict[str, Any]] = {p: {"vpc": VPC, "profile": p} for p in PROFILES}
    out["zones-file"] = {"zones": str(zones)}
    out["no-zones"] = {}
    out["suppressions"] = {"vpc": VPC, "suppressions": str(sups)}
    return out


def captures() -> list[Path]:
    suffixes = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz", ".gz", ".zst")
    found = sorted(p for p in (ROOT / "captures").iterdir() if p.is_file() and p.name.endswith(suffixes))
    if CORPUS.is_dir():
        found += sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name.endswith(suffixes))
    return found


def key(path: Path) -> str:
    """captures/NAME, corpus/PATH, or the file's name (a --bench capture, wherever the checkout is)."""
    for base, prefix in ((ROOT / "captures", "captures/"), (CORPUS, "corpus/")):
        try:
            return prefix + str(path.relative_to(base))
        except ValueError:
            pass
    return path.name


def _streamed(path: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """The streamed audit as audit_stream runs it, keeping the flows' policy columns too."""
    import analyzer
    from analyzer.config import FlowOptions
    from analyzer.policy import build_zones
    from analyzer.policy.evaluate import sort_findings
    from analyzer.policy.stage import PolicyStage

    flow = FlowOptions()
    zone_map = build_zones(vpc=list(cfg.get("vpc", ())), zones=cfg.get("zones"))
    stage = PolicyStage(zones=zone_map, profile=cfg.get("profile"), suppressions=cfg.get("suppressions"), now=NOW,
                        horizon_s=float(flow.active_timeout) + float(flow.idle_timeout_tcp) + 300.0)
    result = analyzer.analyze([str(path)], frames=("flows",), stages=[stage], on_problem=lambda p: None)
    t = stage.tally
    return {
        "findings": sort_findings(stage.findings()),
        "destinations": stage.destinations(),
        "flows": result.flows[FLOW_COLUMNS].reset_index(drop=True),
        "tally": (t.flows, dict(t.verdicts), dict(t.findings), dict(t.not_judged)),
        "stats": dict(stage.stats),
    }


def results_of(path: Path, cfgs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    import analyzer
    from analyzer.policy import build_zones, evaluate

    out: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            facts = analyzer.analyze([str(path)], on_problem=lambda p: None)
        except Exception as exc:  # an unreadable capture is a result too
            return {"error": f"{type(exc).__name__}: {exc}"}
        names = facts.frame_names
        for name, cfg in cfgs.items():
            try:
                zone_map = build_zones(vpc=list(cfg.get("vpc", ())), zones=cfg.get("zones"))
                r = evaluate(facts.flows, facts.tls, facts.certs, zones=zone_map, profile=cfg.get("profile"),
                             suppressions=cfg.get("suppressions"), now=NOW,
                             credentials=facts["credentials"] if "credentials" in names else None,
                             ftp_data=facts["ftp_data"] if "ftp_data" in names else None)
                out[f"{name}/audit"] = {"findings": r.findings, "destinations": r.destinations,
                                        "flows": r.flows[FLOW_COLUMNS].reset_index(drop=True)}
            except Exception as exc:
                out[f"{name}/audit"] = {"error": f"{type(exc).__name__}: {exc}"}
            try:
                out[f"{name}/stream"] = _streamed(path, cfg)
            except Exception as exc:
                out[f"{name}/stream"] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def _fixed_columns_differences(name: str, old: object, new: object) -> list[str]:
    """bench/golden.py's comparison, with the audit outputs' columns fixed (none may be added)."""
    from golden import differences

    return differences(name, old, new, added_columns=False)


def _all(paths: list[Path]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        cfgs = configs(Path(tmp))
        return {key(p): results_of(p, cfgs) for p in paths}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["save", "compare", "diff"])
    parser.add_argument("file", type=Path)
    parser.add_argument("after", type=Path, nargs="*",
                        help="diff: saved files of the new tree (e.g. the parts of `save --part K/N`), compared "
                             "with FILE without running anything")
    parser.add_argument("--bench", type=Path, action="append", default=[],
                        help="a benchmark capture to add (repeatable; e.g. bench/data/bench_200k.pcap)")
    parser.add_argument("--only-bench", action="store_true", help="the --bench captures alone")
    parser.add_argument("--part", default="1/1", metavar="K/N",
                        help="save or compare the K-th of N interleaved parts of the captures (N at once on N cores)")
    args = parser.parse_args()
    paths = ([] if args.only_bench else captures()) + [p.resolve() for p in args.bench]
    k, n = (int(x) for x in args.part.split("/"))
    paths = paths[k - 1::n]
    if args.action == "save":
        result = _all(paths)
        args.file.write_bytes(pickle.dumps(result))
        print(f"saved {len(result)} captures to {args.file}")
        return 0
    before = pickle.loads(args.file.read_bytes())
    if args.action == "diff":
        return _diff(before, args.after)
    bad = compared = 0
    with tempfile.TemporaryDirectory() as tmp:
        cfgs = configs(Path(tmp))
        for path in paths:
            if key(path) not in before:
                print(f"{key(path)}: new capture (not compared)", flush=True)
                continue
            compared += 1
            problems = _problems(before[key(path)], results_of(path, cfgs))
            if problems:
                bad += 1
                print(f"{key(path)}:")
                for line in problems:
                    print(f"  {line}")
            print(f"{compared}/{len(paths)} {key(path)}: {len(problems)} differences", flush=True)
    gone = [] if args.only_bench or n > 1 else sorted(set(before) - set(key(p) for p in paths))
    for cap in gone:
        print(f"{cap}: in the saved run, not found now")
    print(f"{compared} captures compared, {bad} differ, {len(gone)} gone")
    bad += len(gone)
    return 1 if bad else 0


def _diff(before: dict[str, Any], parts: list[Path]) -> int:
    after: dict[str, Any] = {}
    for part in parts:
        after.update(pickle.loads(part.read_bytes()))
    bad = 0
    for cap in sorted(after):
        if cap not in before:
            print(f"{cap}: new capture (not compared)")
            continue
        problems = _problems(before[cap], after[cap])
        if problems:
            bad += 1
            print(f"{cap}:")
            for line in problems:
                print(f"  {line}")
    missing = sorted(set(before) - set(after))
    for cap in missing:
        print(f"{cap}: saved before, not in the new files")
    print(f"{len(set(after) & set(before))} captures compared, {bad} differ, {len(missing)} not in the new files")
    return 1 if bad or missing else 0


def _problems(old_runs: dict[str, Any], new_runs: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for run in sorted(set(old_runs) | set(new_runs)):
        old, new = old_runs.get(run), new_runs.get(run)
        if not isinstance(old, dict) or not isinstance(new, dict):
            problems += [] if old == new else [f"{run}: {old!r} != {new!r}"]
            continue
        for frame in sorted(set(old) | set(new)):
            problems += _fixed_columns_differences(f"{run}/{frame}", old.get(frame), new.get(frame))
    return problems


if __name__ == "__main__":
    sys.exit(main())
