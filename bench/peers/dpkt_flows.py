#!/usr/bin/env python3
"""Peer: dpkt reads every packet, parses Ethernet/IP/TCP|UDP, counts bidirectional 5-tuple flows.

Copied from ../shared/bench/peers/dpkt_flows.py (the script behind the peer anchors in
../shared/bench/results.md) so that bench/run_bench.py measures exactly the same work; only this
docstring and the formatting differ. usage: dpkt_flows.py FILE
"""

import sys

import dpkt

path = sys.argv[1]
flows = {}
n = 0
with open(path, "rb") as f:
    rd = dpkt.pcap.UniversalReader(f)
    for _ts, buf in rd:
        n += 1
        eth = dpkt.ethernet.Ethernet(buf)
        ip = eth.data
        if not isinstance(ip, dpkt.ip.IP):
            continue
        l4 = ip.data
        if isinstance(l4, (dpkt.tcp.TCP, dpkt.udp.UDP)):
            a, b = (ip.src, l4.sport), (ip.dst, l4.dport)
            key = (a, b, ip.p) if a <= b else (b, a, ip.p)
            st = flows.get(key)
            if st is None:
                flows[key] = [1, len(buf)]
            else:
                st[0] += 1
                st[1] += len(buf)
print(f"packets={n} flows={len(flows)}")
