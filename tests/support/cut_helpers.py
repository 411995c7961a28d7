"""Partial views of a capture, as a one-sided mirror or a late-starting one would have recorded it.

`cut_capture(src, dst, flows, keep)` copies the packets of `src` that `keep(packet_no_in_flow,
to_server)` accepts into `dst` (classic pcap, same link type and timestamps). Each packet's flow and
direction come from the two-sided run's `flows` frame (client and server address and port), so the
cut follows the analyzer's own idea of who the client is; packets of no flow in the frame (ARP,
ICMP) are dropped. The packets are copied byte for byte: scapy only reads their addresses.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

Endpoint = tuple[str, int]
Keep = Callable[[int, bool], bool]


def flow_ends(flows: pd.DataFrame) -> dict[tuple[str, Endpoint, Endpoint], bool]:
    """(transport, source, destination) -> is the source the client, for every TCP/UDP flow."""
    out: dict[tuple[str, Endpoint, Endpoint], bool] = {}
    for row in flows.itertuples():
        if row.transport not in ("tcp", "udp") or pd.isna(row.client_port):
            continue
        client = (str(row.client_ip), int(row.client_port))
        server = (str(row.server_ip), int(row.server_port))
        out[(row.transport, client, server)] = True
        out[(row.transport, server, client)] = False
    return out


def _ends(pkt) -> tuple[str, Endpoint, Endpoint] | None:  # type: ignore[no-untyped-def]
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.inet6 import IPv6

    ip = pkt.getlayer(IP) or pkt.getlayer(IPv6)
    if ip is None:
        return None
    for layer, name in ((TCP, "tcp"), (UDP, "udp")):
        if layer in ip:
            t = ip[layer]
            return name, (str(ip.src), int(t.sport)), (str(ip.dst), int(t.dport))
    return None


def cut_capture(src: Path, dst: Path, flows: pd.DataFrame, keep: Keep) -> Path:
    """Write the packets of `src` that `keep(n, to_server)` accepts to `dst`: n counts the packets
    of the same flow before this one (both directions), to_server says the client sent it."""
    import scapy.layers.all  # noqa: F401  (the link layers: without them scapy reads frames as Raw)
    from scapy.utils import PcapReader, PcapWriter

    ends = flow_ends(flows)
    counts: dict[frozenset[Endpoint], int] = {}
    # a pcapng reader has no linktype: the writer takes the first packet's
    with (PcapReader(str(src)) as reader,
          PcapWriter(str(dst), sync=True, linktype=getattr(reader, "linktype", None)) as writer):
        for pkt in reader:
            key = _ends(pkt)
            if key is None or key not in ends:
                continue
            conv = frozenset((key[1], key[2]))
            n = counts.get(conv, 0)
            counts[conv] = n + 1
            if keep(n, ends[key]):
                writer.write(pkt)
    return dst


def client_only(n: int, to_server: bool) -> bool:
    return to_server


def server_only(n: int, to_server: bool) -> bool:
    return not to_server


def after(first: int) -> Keep:
    """Drop each flow's first `first` packets (the mirror session started during the connection)."""
    return lambda n, to_server: n >= first
