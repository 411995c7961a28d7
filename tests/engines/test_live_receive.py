"""The live source's receive thread: batches of several recvmmsg calls, a bounded queue whose
overflow is counted, a shutdown that drains it, counters that add up at every window."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from analyzer.config import Options
from analyzer.engines.live import LiveRun
from analyzer.sources import _mmsg
from analyzer.sources.mirror import MirrorSource

pytestmark = pytest.mark.skipif(not _mmsg.available(), reason="recvmmsg is not available here")

ETH = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00"


def _datagram(i: int) -> bytes:
    """A VXLAN datagram holding one UDP packet (10.0.0.1 -> 10.0.0.2, a payload naming i)."""
    payload = i.to_bytes(4, "big") * 4
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + len(payload), i & 0xFFFF, 0, 64, 17, 0,
                     socket.inet_aton("10.0.0.1"), socket.inet_aton("10.0.0.2"))
    frame = ETH + ip + struct.pack("!HHHH", 1234, 53, 8 + len(payload), 0) + payload
    return struct.pack("!II", 0x08000000, 3 << 8) + frame


def _send(port: int, n: int, first: int = 0) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for i in range(first, first + n):
            s.sendto(_datagram(i), ("127.0.0.1", port))
    finally:
        s.close()


def _wait(cond: object, seconds: float = 10.0) -> None:
    end = time.monotonic() + seconds
    while not cond() and time.monotonic() < end:  # type: ignore[operator]
        time.sleep(0.01)


def test_a_batch_is_several_receive_calls() -> None:
    """1,000 datagrams queued before the first read: one batch (up to 4,096 or 20 ms), made of
    recvmmsg calls of at most 256: the per-batch work is paid once for them all."""
    src = MirrorSource(bind="127.0.0.1", ports=(0,), geneve_ports=(), rcvbuf=8 << 20)
    assert src.threaded
    _send(src.bound_ports[0], 1000)
    it = src.batches()
    first = next(it)
    src.stop()
    rest = sum(len(b) for b in it)
    src.close()
    assert len(first) == 1000 and rest == 0
    assert src.counters.syscalls >= 4 and src.counters.received == src.counters.yielded == 1000


def test_the_queue_buffers_are_reused_once_the_analysis_is_done_with_them() -> None:
    """Far more batches than the queue's two buffers: each buffer is reused once its batch is gone,
    so every datagram is analysed, none dropped, and no third buffer is ever made."""
    src = MirrorSource(bind="127.0.0.1", ports=(0,), geneve_ports=(), rcvbuf=8 << 20, batch_packets=64,
                       batch_bytes=1 << 17, queue_bytes=2 << 17, max_delay=0.001)
    sender = threading.Thread(target=_send, args=(src.bound_ports[0], 3000))
    got = batches = 0
    made = set()
    sender.start()
    end = time.monotonic() + 20
    for b in src.batches():
        got += len(b)
        batches += bool(len(b))
        made.update(id(s) for s in src._lent)
        if got >= 3000 or time.monotonic() > end:
            src.stop()
    sender.join()
    src.close()
    c = src.counters
    assert got == c.received == 3000 and c.dropped_queue == 0 and src.kernel_drops() == 0
    assert batches >= 3000 // 64 and len(made) <= 2


def test_a_full_queue_leaves_the_rest_to_the_socket_buffer_and_its_drops_are_counted() -> None:
    """The analysis keeps every batch (as a stalled one would hold them): once the queue's two
    buffers are in use the receiver stops reading, the (small) socket buffer overflows, and what
    the kernel dropped is counted: received + kernel drops = sent, nothing lost silently."""
    import os

    if os.geteuid() != 0:
        pytest.skip("a receive buffer below net.core.rmem_default needs CAP_NET_ADMIN (SO_RCVBUFFORCE)")
    src = MirrorSource(bind="127.0.0.1", ports=(0,), geneve_ports=(), rcvbuf=32 << 10, batch_packets=64,
                       batch_bytes=1 << 17, queue_bytes=2 << 17, max_delay=0.001)
    assert src.queue_slabs == 2
    held = []
    it = src.batches()
    held.append(next(it))  # the receiver runs from here on
    _send(src.bound_ports[0], 3000)
    _wait(lambda: src.queue_full_events > 0)
    time.sleep(0.2)
    src.stop()
    kept = sum(len(b) for b in held)
    held.clear()  # the analysis catches up: the drain reads what the socket buffer kept
    rest = sum(len(b) for b in it)
    src.close()
    c = src.counters
    drops = src.kernel_drops()
    assert src.queue_full_events > 0 and drops > 0 and c.dropped_queue == 0
    assert c.received == kept + rest + c.filtered
    assert c.received + drops == 3000 and src.in_queue == 0


def test_the_shutdown_drains_the_queue_and_the_socket(tmp_path: Path) -> None:
    """SIGTERM's path: stop() while batches wait in the queue and datagrams in the socket; every
    one is analysed, none is a queue drop, and the windows' counters add up."""
    src = MirrorSource(bind="127.0.0.1", ports=(0,), geneve_ports=(), rcvbuf=32 << 20, batch_packets=256)
    run = LiveRun(src, Options(), window=0.3, out_dir=str(tmp_path), fmt="jsonl", dedup_window=0.0)
    port = src.bound_ports[0]
    windows = []

    def slow(w: object) -> None:  # a window's writing takes a while: the queue fills meanwhile
        windows.append(w)
        time.sleep(0.3)

    run.on_window = slow  # type: ignore[assignment]

    def send_then_stop() -> None:
        _send(port, 4000)
        _wait(lambda: src.in_queue > 0, 5.0)  # batches are waiting for the analysis
        src.stop()

    t = threading.Thread(target=send_then_stop)
    t.start()
    list(run.run())
    t.join()
    src.close()
    tot = run.totals
    assert tot.received == 4000 == tot.analysed + tot.duplicates + tot.filtered + tot.dropped_queue
    assert tot.dropped_queue == 0 and tot.dropped_kernel == 0
    for w in windows:  # at every window, not only at the end
        c = w.totals  # type: ignore[attr-defined]
        assert c.received == c.analysed + c.duplicates + c.filtered + c.dropped_queue
    flows = sum(w.counters.flows for w in windows)  # type: ignore[attr-defined]
    lines = sum(len(p.read_text().splitlines()) for p in tmp_path.glob("flows-*.jsonl"))  # the streamed files
    assert flows >= 1 and lines == flows
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["queued_datagrams"] >= 0 and status["counters"]["received"] <= 4000


def test_the_receive_thread_runs_above_the_analysis_where_permitted() -> None:
    """The receive thread lowers its own nice value by RECEIVE_PRIORITY (root or CAP_SYS_NICE), and
    says what it got; the process's other threads keep theirs. Unprivileged: it says why not."""
    import os
    import threading

    from analyzer.sources import mirror
    from analyzer.sources.mirror import MirrorSource

    src = MirrorSource(bind="127.0.0.1", ports=(0,), geneve_ports=(), receive_thread=True)
    seen: dict[str, int] = {}
    real = mirror._raise_priority

    def spy(steps: int) -> str:
        seen["before"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        got = real(steps)
        seen["after"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        return got

    mirror._raise_priority = spy  # type: ignore[assignment]
    try:
        main = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        it = src.batches()
        next(it)  # an idle tick: the receive thread has started
        assert seen, "the receive thread did not set its priority"
        if os.geteuid() == 0:
            assert seen["after"] == max(-20, seen["before"] - mirror.RECEIVE_PRIORITY) < main
            assert src.receive_priority == f"nice {seen['after']}"
        else:
            assert src.receive_priority.startswith("not permitted") or seen["after"] < seen["before"]
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main  # the analysis keeps its own
        src.stop()
        for _ in it:
            pass
    finally:
        mirror._raise_priority = real  # type: ignore[assignment]
        src.close()
