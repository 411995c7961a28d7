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
    stop once every datagram sent was received. Returns (all windows' flows, totals, windows)."""
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
    flows = pd.concat([w.frames["flows"] for w in windows], ignore_index=True)
    return flows, run.totals, windows
