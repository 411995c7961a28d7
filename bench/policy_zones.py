"""Time the zone lookup of analyzer.policy.zones on synthetic flows (not a test: speed goes in the report).

python bench/policy_zones.py [--flows 1000000] [--distinct 60000]

Addresses: a fifth IPv6; clients mostly inside the declared VPC, servers spread over the VPC, RFC 1918,
AWS prefixes and the internet, so the lookup meets every kind of range.
"""

from __future__ import annotations

import argparse
import ipaddress
import time

import numpy as np

from analyzer._pandas import pd
from analyzer.policy.zones import build_zones, zone_flows


def _addresses(rng: np.random.Generator, n: int) -> list[str]:
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.3:
            out.append(str(ipaddress.IPv4Address(0x0A000000 + int(rng.integers(0, 1 << 16)))))  # 10.0/16 VPC
        elif r < 0.4:
            out.append(str(ipaddress.IPv4Address(0xC0A80000 + int(rng.integers(0, 1 << 16)))))  # 192.168/16
        elif r < 0.8:
            out.append(str(ipaddress.IPv4Address(int(rng.integers(1 << 24, 0xE0000000)))))  # anywhere
        else:
            out.append(str(ipaddress.IPv6Address((0x2406DA << 104) + int(rng.integers(0, 1 << 62)))))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--flows", type=int, default=1_000_000)
    ap.add_argument("--distinct", type=int, default=60_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    pool = np.array(_addresses(rng, args.distinct), dtype=object)
    flows = pd.DataFrame({
        "client_ip": pd.array(pool[rng.integers(0, len(pool) // 3, args.flows)], dtype="string"),
        "server_ip": pd.array(pool[rng.integers(0, len(pool), args.flows)], dtype="string"),
    })
    t = time.perf_counter()
    zmap = build_zones(vpc=["10.0.0.0/16"])
    print(f"build_zones (user + AWS + special, {len(zmap.table.starts)} intervals): {time.perf_counter() - t:.3f} s")
    for _ in range(args.rounds):
        t, c = time.perf_counter(), time.process_time()
        out = zone_flows(flows, zmap)
        took, cpu = time.perf_counter() - t, time.process_time() - c
        print(f"zone_flows: {args.flows:,} flows, {args.distinct:,} distinct addresses: {took:.3f} s wall, "
              f"{cpu:.3f} s CPU")
    print(out["direction"].value_counts().to_dict())


if __name__ == "__main__":
    main()
