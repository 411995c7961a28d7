"""Test helper: UDP conversations of a capture as `FlowPayload`s (tests only).

Until the core's `analyzer.analyze()` exists, QUIC and DTLS tests build their flows with this.
Records are read with scapy's raw readers; link layers (Ethernet, raw IP, SLL, SLL2, loopback,
PPP), VLAN tags, IP-in-IP and VXLAN are walked here. IP fragments other than the first are skipped.
The client is the sender of the conversation's first datagram unless that sender uses a port in
`SERVER_PORTS` and the other side does not (a capture that starts with the server's answer).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from analyzer.dissect.base import Datagram, FlowPayload

CORPUS = Path(os.environ.get("INTRANSIT_CORPUS", Path(__file__).resolve().parents[3] / "shared" / "corpus"))
PCAPS = CORPUS / "pcaps"
ORACLE = CORPUS / "oracle"

SERVER_PORTS = frozenset({443, 4433, 4443, 784, 853, 8443, 5684, 5061, 3478, 19305})


def _ip_udp(data: bytes, pos: int, ethertype: int) -> tuple[str, int, str, int, bytes] | None:
    """Walk IPv4/IPv6 (and VLAN tags) at `pos` down to the innermost UDP payload."""
    for _ in range(4):  # at most a few nested layers (VLAN, tunnels)
        if ethertype in (0x8100, 0x88A8, 0x9100):
            if pos + 4 > len(data):
                return None
            ethertype = int.from_bytes(data[pos + 2 : pos + 4], "big")
            pos += 4
            continue
        if ethertype == 0x0800:
            if pos + 20 > len(data):
                return None
            ihl = (data[pos] & 0x0F) * 4
            proto = data[pos + 9]
            frag = int.from_bytes(data[pos + 6 : pos + 8], "big")
            if frag & 0x1FFF:
                return None  # a non-first fragment
            src = ipaddress.IPv4Address(data[pos + 12 : pos + 16])
            dst = ipaddress.IPv4Address(data[pos + 16 : pos + 20])
            total = int.from_bytes(data[pos + 2 : pos + 4], "big")
            end = min(len(data), pos + total) if total else len(data)
            pos += ihl
        elif ethertype == 0x86DD:
            if pos + 40 > len(data):
                return None
            proto = data[pos + 6]
            plen = int.from_bytes(data[pos + 4 : pos + 6], "big")
            src6 = ipaddress.IPv6Address(data[pos + 8 : pos + 24])
            dst6 = ipaddress.IPv6Address(data[pos + 24 : pos + 40])
            src, dst = src6, dst6  # type: ignore[assignment]
            end = min(len(data), pos + 40 + plen) if plen else len(data)
            pos += 40
            while proto in (0, 43, 60) and pos + 8 <= end:  # hop-by-hop, routing, destination
                proto = data[pos]
                pos += (data[pos + 1] + 1) * 8
        else:
            return None
        if proto == 4:  # IPv4 in IP
            ethertype = 0x0800
            continue
        if proto == 41:
            ethertype = 0x86DD
            continue
        if proto != 17 or pos + 8 > end:
            return None
        sport = int.from_bytes(data[pos : pos + 2], "big")
        dport = int.from_bytes(data[pos + 2 : pos + 4], "big")
        payload = data[pos + 8 : end]
        if dport == 4789 and len(payload) >= 22:  # VXLAN: inner Ethernet
            ethertype = int.from_bytes(payload[20:22], "big")
            data, pos = payload, 22
            continue
        return str(src), sport, str(dst), dport, payload
    return None


def _endpoints(data: bytes, linktype: int) -> tuple[str, int, str, int, bytes] | None:
    if linktype == 1:  # Ethernet
        return _ip_udp(data, 14, int.from_bytes(data[12:14], "big")) if len(data) >= 14 else None
    if linktype in (101, 228, 229, 12, 14):  # raw IP
        if not data:
            return None
        return _ip_udp(data, 0, 0x86DD if data[0] >> 4 == 6 else 0x0800)
    if linktype == 113:  # Linux SLL
        return _ip_udp(data, 16, int.from_bytes(data[14:16], "big")) if len(data) >= 16 else None
    if linktype == 276:  # Linux SLL2
        return _ip_udp(data, 20, int.from_bytes(data[0:2], "big")) if len(data) >= 20 else None
    if linktype in (0, 108):  # BSD loopback: 4-byte address family, either byte order
        if len(data) < 4:
            return None
        fam = int.from_bytes(data[:4], "little")
        if fam > 0xFFFF:
            fam = int.from_bytes(data[:4], "big")
        return _ip_udp(data, 4, 0x0800 if fam == 2 else 0x86DD)
    if linktype == 9 or linktype == 50:  # PPP (optionally HDLC-framed)
        pos = 2 if data[:2] == b"\xff\x03" else 0
        proto = int.from_bytes(data[pos : pos + 2], "big")
        return _ip_udp(data, pos + 2, {0x21: 0x0800, 0x57: 0x86DD}.get(proto, 0))
    return None


def udp_flows(path: str | Path, limit: int | None = None) -> list[FlowPayload]:
    """One FlowPayload per UDP 5-tuple (both directions), datagrams in capture order."""
    from scapy.utils import RawPcapNgReader, RawPcapReader

    path = Path(path)
    with open(path, "rb") as fh:
        magic = fh.read(4)
    ng = magic == b"\x0a\x0d\x0d\x0a"
    flows: dict[tuple[tuple[str, int], ...], FlowPayload] = {}
    reader = RawPcapNgReader(str(path)) if ng else RawPcapReader(str(path))
    try:
        for i, (data, meta) in enumerate(reader):
            if limit is not None and i >= limit:
                break
            if ng:
                m: Any = meta
                linktype = m.linktype
                ts = ((m.tshigh << 32) | m.tslow) / m.tsresol
            else:
                linktype = reader.linktype
                ts = meta.sec + meta.usec / 1e6
            try:
                ends = _endpoints(bytes(data), linktype)
            except (IndexError, ValueError):
                ends = None
            if ends is None:
                continue
            src, sport, dst, dport, payload = ends
            key = tuple(sorted([(src, sport), (dst, dport)]))
            flow = flows.get(key)
            if flow is None:
                if sport in SERVER_PORTS and dport not in SERVER_PORTS:
                    src, sport, dst, dport = dst, dport, src, sport
                    to_server = False
                else:
                    to_server = True
                uid = "U" + hashlib.sha1(repr(key).encode()).hexdigest()[:12]
                flow = FlowPayload(uid, "udp", src, dst, sport, dport, ts)
                flows[key] = flow
            else:
                to_server = (src, sport) == (flow.client_ip, flow.client_port)
            flow.datagrams.append(Datagram(ts, to_server, payload))
    finally:
        reader.close()
    return list(flows.values())


def flow_from_payloads(payloads: Iterable[tuple[bool, bytes]], server_port: int = 443) -> FlowPayload:
    """A synthetic UDP flow from (to_server, payload) pairs."""
    flow = FlowPayload("Utest", "udp", "192.0.2.1", "198.51.100.1", 50000, server_port, 1.0)
    for i, (to_server, payload) in enumerate(payloads):
        flow.datagrams.append(Datagram(1.0 + i / 1000, to_server, payload))
    return flow


def read_oracle(source: str, name: str) -> list[dict[str, str]]:
    import csv

    path = ORACLE / source / f"{name}.csv"
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def oracle_files_with(app_protocol: str) -> list[Path]:
    """Oracle CSVs (key logs stripped) holding a UDP conversation tshark dissected as `app_protocol`."""
    import csv

    if not CORPUS.is_dir():
        return []
    out = []
    for path in sorted(ORACLE.rglob("*.csv")):
        if path.name.endswith((".with_secrets.csv", "crosscheck.csv")):
            continue
        with open(path, newline="") as fh:
            if any(r["transport"] == "udp" and app_protocol in r["app_protocols"] for r in csv.DictReader(fh)):
                out.append(path)
    return out
