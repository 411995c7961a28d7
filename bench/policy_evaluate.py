"""Time analyzer.policy.evaluate on the bundled captures' frames tiled to many flows (speed goes in the report).

python bench/policy_evaluate.py [--copies 4000]

Each copy of the captures' flows and TLS sessions gets new uids and shifted client addresses, so the
zone lookup sees many distinct addresses; certificates are shared, as they are in real traffic.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import analyzer
from analyzer._pandas import pd
from analyzer.policy import build_zones, evaluate, zone_flows

ROOT = Path(__file__).resolve().parents[1]


def _tile(frame: pd.DataFrame, copies: int) -> pd.DataFrame:
    big = pd.concat([frame] * copies, ignore_index=True)
    k = np.repeat(np.arange(copies), len(frame)).astype(str)
    big["uid"] = (big["uid"].astype(str) + "-" + k).astype("string")
    if "client_ip" in big:
        v4 = big["client_ip"].str.startswith("10.77.0.").fillna(False)
        host = (np.repeat(np.arange(copies), len(frame)) % 60000)
        big.loc[v4, "client_ip"] = ("10.77." + (host[v4.to_numpy()] // 250).astype(str) + "."
                                    + (host[v4.to_numpy()] % 250 + 1).astype(str))
    return big


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=4000)
    args = ap.parse_args()
    r = analyzer.analyze([str(ROOT / "captures")])
    flows, tls, certs = _tile(r.flows, args.copies), _tile(r.tls, args.copies), r.certs
    print(f"{len(flows):,} flows, {len(tls):,} TLS sessions, {len(certs)} certificates")
    zmap = build_zones(vpc=["10.77.0.0/16"])
    t, c = time.perf_counter(), time.process_time()
    zone_flows(flows, zmap)
    print(f"zone_flows: {time.perf_counter() - t:.3f} s wall, {time.process_time() - c:.3f} s CPU")
    for profile in ("sec09", "strict"):
        t, c = time.perf_counter(), time.process_time()
        res = evaluate(flows, tls, certs, zones=zmap, profile=profile, now="2026-12-06")
        took, cpu = time.perf_counter() - t, time.process_time() - c
        # CPU time beside wall time: on a shared machine the wall clock mostly measures the neighbours
        print(f"evaluate ({profile}): {took:.2f} s wall, {cpu:.2f} s CPU, {len(res.findings):,} findings, "
              f"{len(flows) / cpu:,.0f} flows per CPU second")


if __name__ == "__main__":
    main()
