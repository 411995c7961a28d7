"""Test helper: a live listener in this process fed by `analyzer.sources.replay` (loopback only)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

KEY_COLUMNS = ["transport", "client_ip", "client_port", "server_ip", "server_port", "community_id",
               "packets_to_server", "packets_to_client", "ip_bytes_to_server", "ip_bytes_to_client",
               "payload_bytes_to_server", "payload_bytes_to_client", "conn_state", "client_by", "truncated",
               "app_protocol", "encrypted", "tls_version", "tls_cipher", "tls_server_name", "ja4", "ja4s"]


def sorted_keys(flows: Any) -> Any:
    """The key columns of a flows frame, as strings, in one canonical row order."""
    cols = [c for c in KEY_COLUMNS if c in flows.columns]
    df = flows[cols].astype("string").fillna("<NA>")
    return df.sort_values(cols).reset_index(drop=True)


def listen_to_replays(captures: Sequence[str], *, rate: float | None = 20000.0, vni: int = 7,
                      window: float = 60.0, dedup_window: float = 0.05, senders: int = 1,
                      **run_kw: Any) -> tuple[Any, Any, list[Any]]:
    """Replay each capture (`senders` times, from distinct sockets) into a LiveRun on 127.0.0.1;
    stop once every datagram sent was received. Returns (all windows' flows, totals, windows); the
    flows are None when they went to files (out_dir)."""
    import time

    import pandas as pd

    from analyzer.config import Options
    from analyzer.engines.live import LiveRun
    from analyzer.sources.mirror import MirrorSource
    from analyzer.sources.replay import replay

    src = MirrorSource(bind="127.0.0.1", ports=(0,), geneve_ports=(), **run_kw.pop("source_kw", {}))
    port = src.bound_ports[0]
    run = LiveRun(src, Options(), window=window, dedup_window=dedup_window, **run_kw)
    sent = []

    def send() -> None:
        try:
            for path in captures:
                for _ in range(senders):
                    sent.append(replay(path, "127.0.0.1", port, vni=vni, rate=rate).sent)
            deadline = time.monotonic() + 20
            while src.counters.received < sum(sent) and time.monotonic() < deadline:
                time.sleep(0.02)
        finally:
            src.stop()

    t = threading.Thread(target=send)
    t.start()
    try:
        windows = list(run.run())
    finally:
        t.join()
        src.close()
    kept = [w.frames["flows"] for w in windows if "flows" in w.frames]  # with out_dir, they are in the files
    flows = pd.concat(kept, ignore_index=True) if kept else None
    return flows, run.totals, windows


def synthetic_tcp_pcap(path: str, flows: int, *, start_ns: int = 1_700_000_000_000_000_000,
                       gap_ns: int = 10_000) -> int:
    """A pcap of `flows` complete TCP conversations (handshake, one request, one answer, FIN both
    ways: 8 packets each, interleaved 64 at a time) between 10.1.x.y and 10.2.0.1:80; returns the
    packet count. Built with struct (scapy is ~100x slower for this many packets)."""
    import socket
    import struct

    def tcp(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int, data: bytes = b"") -> bytes:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(data), 1, 0x4000, 64, 6, 0, socket.inet_aton(src),
                         socket.inet_aton(dst))
        return (b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00" + ip
                + struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 0x50, flags, 65535, 0, 0) + data)

    records = []
    t = start_ns
    req, resp = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    for base in range(0, flows, 64):
        convs = range(base, min(base + 64, flows))
        for step in range(8):
            for i in convs:
                c, s, cp = f"10.1.{i // 250}.{i % 250 + 1}", "10.2.0.1", 10000 + i % 50000
                a, b = 1000, 5000
                pkt = (tcp(c, s, cp, 80, a, 0, 0x02), tcp(s, c, 80, cp, b, a + 1, 0x12),
                       tcp(c, s, cp, 80, a + 1, b + 1, 0x10), tcp(c, s, cp, 80, a + 1, b + 1, 0x18, req),
                       tcp(s, c, 80, cp, b + 1, a + 1 + len(req), 0x18, resp),
                       tcp(c, s, cp, 80, a + 1 + len(req), b + 1 + len(resp), 0x11),
                       tcp(s, c, 80, cp, b + 1 + len(resp), a + 2 + len(req), 0x11),
                       tcp(c, s, cp, 80, a + 2 + len(req), b + 2 + len(resp), 0x10))[step]
                records.append(struct.pack("<IIII", t // 1_000_000_000, t % 1_000_000_000, len(pkt), len(pkt)) + pkt)
                t += gap_ns
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1))
        fh.write(b"".join(records))
    return len(records)
