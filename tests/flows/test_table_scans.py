"""The flow table's scans of its records stay proportional to what they find, not to how often the
export has to stop: an idle scan that ends thousands of flows (exported 256 at a time when they
carry payload) reads the records once, a memory relief orders the live flows once, and no scan reads
past the highest record ever used (a listener allocates its records at their limit up front).

Each of these was a 0.4 s stall of `intransit listen` at 150k datagrams/s (bench/RESULTS.md, tenth
stop): the scans restarted from record 0 after every export of 256 flows."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator

from support.memory_helpers import T0, tcp_frame
from support.pcap_helpers import batch_of

import analyzer.flows._kernel as FK
from analyzer.decode import decode
from analyzer.flows.table import FlowOptions, FlowTable


def _open_flows(n: int, payload: int = 100) -> list[bytes]:
    """n TCP connections to port 80, each a SYN then `payload` bytes from the client; none closes."""
    frames = []
    for k in range(n):
        src, sport = 0x0A000001 + k // 1000, 20000 + k % 1000
        frames.append(tcp_frame(src, 0x0A640001, sport, 80, 1000, 0, FK_SYN))
        frames.append(tcp_frame(src, 0x0A640001, sport, 80, 1001, 0, FK_ACK | FK_PSH, b"x" * payload))
    return frames


FK_SYN, FK_ACK, FK_PSH = 0x02, 0x10, 0x08


def _fed(table: FlowTable, frames: list[bytes]) -> int:
    """Feed the frames as one batch (1 us apart); returns the flows that ended meanwhile."""
    ts = [T0 + k * 1_000 for k in range(len(frames))]
    return sum(len(e) for e in table.feed(decode(batch_of(frames, ts=ts))))


@contextlib.contextmanager
def _calls(kernel: str, state: Callable[[], int]) -> Iterator[list[int]]:
    """While inside: `state()` read before each call of the flow kernel `kernel`, in a list."""
    seen: list[int] = []
    inner = getattr(FK, kernel)

    def watched(*args):  # type: ignore[no-untyped-def]
        seen.append(state())
        return inner(*args)

    setattr(FK, kernel, watched)
    try:
        yield seen
    finally:
        setattr(FK, kernel, inner)


def test_an_idle_scan_goes_on_where_the_full_export_stopped_it() -> None:
    table = FlowTable(FlowOptions(payload_budget=4096, idle_timeout_tcp=1.0), capacity=4096)
    assert table.export_chunk < 1000  # flows with payload are exported a chunk at a time
    assert _fed(table, _open_flows(1000)) == 0
    with _calls("expire", lambda: int(table.G[FK.G_EXPIRE_AT])) as starts:
        chunks = list(table.expire_iter(T0 + 3_000_000_000))  # every flow idle past 1 s
    uids = [u for c in chunks for u in c.columns["uid"]]
    assert len(uids) == len(set(uids)) == 1000 and len(chunks) >= 1000 // table.export_chunk
    # each call after the first goes on from where the previous one stopped, never from record 0
    assert starts[0] == 0 and len(starts) == len(chunks) and starts == sorted(starts)
    assert all(b > a for a, b in itertools.pairwise(starts))
    assert table.G[FK.G_EXPIRE_AT] == 0  # the scan is over: the next one starts afresh


def test_no_scan_reads_past_the_highest_record_in_use() -> None:
    table = FlowTable(FlowOptions(payload_budget=4096), capacity=1 << 16)
    _fed(table, _open_flows(300))
    assert table.G[FK.G_RHWM] == 300 == table.live_flows
    # a record past the mark that looks in use is not seen by the scans (nothing ever writes there)
    table.R[5000, FK.R_USED] = 1
    FK.rehash(table.HT, table.R, table.RU, table.G)
    assert table.G[FK.G_HT_LIVE] == 300
    ended = sum(len(e) for e in table.expire_iter(0, force=True))
    assert ended == 300
    table.R[5000, FK.R_USED] = 0
    # records are reused lowest first: the mark stays where the most flows at once put it
    _fed(table, _open_flows(200))
    assert table.G[FK.G_RHWM] == 300


def test_a_memory_relief_orders_the_live_flows_once() -> None:
    """The pages run out at the lowest payload budget (two pages a flow): each relief ends the flows
    holding the most pages, an eighth of the pool's worth, more than one export holds, from one
    plan of the live flows (made by its first call, read on by the next ones)."""
    table = FlowTable(FlowOptions(payload_budget=4096, memory_budget=64 << 20))  # an eighth: 1,280 pages
    with _calls("evict_largest", lambda: int(table.G[FK.G_EVICT_N])) as plans:
        flows = table.POOL.shape[0] * 2 // 3  # 4/3 of the pool's pages
        ended = _fed(table, _open_flows(flows, payload=4000))
    reliefs = [k for k, _, _ in table.memory_events].count("flows_ended_memory")
    assert reliefs >= 1 and table.memory_evicted == ended >= reliefs * 2 * table.export_chunk
    assert plans.count(0) == reliefs < len(plans)  # one plan per relief, several calls reading it
