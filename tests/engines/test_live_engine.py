"""The live engine: a mirror socket's stream gives the flows a capture gives (loopback replay),
duplicates from two vantages counted once, truncation marked, windows never split a flow."""

from __future__ import annotations

import socket
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from support.live_helpers import KEY_COLUMNS, listen_to_replays, sorted_keys
from support.pcap_helpers import batch_of

import analyzer
from analyzer.config import Options
from analyzer.decode import decode
from analyzer.engines.live import Deduplicator, LiveRun, mark_truncated, parse_duration, parse_size
from analyzer.sources.mirror import MirrorSource
from analyzer.sources.readers import read_capture
from analyzer.sources.replay import ethernet_frames

CAPTURES = Path(__file__).resolve().parents[2] / "captures"
# one of each kind: TLS 1.2/1.3, IPv6, QUIC, DTLS, STARTTLS, FTP (two flows), snaplen-cut, GENEVE and
# VXLAN inside the VXLAN of the replay, a pcapng with two interfaces
LOOPBACK = ["tls12_ecdhe_openssl.pcap", "tls13_ipv6.pcap", "quic_aioquic.pcap", "dtls12_openssl.pcap",
            "smtp_starttls.pcap", "ftp_login.pcap", "snaplen96.pcap", "geneve_gwlb.pcap", "vxlan_mirror.pcap",
            "multi_if.pcapng", "http_plain.pcap.gz", "tcp_rst_closed_port.pcap"]


@pytest.mark.parametrize("name", LOOPBACK)
def test_loopback_replay_gives_the_flows_of_the_capture(name: str) -> None:
    path = str(CAPTURES / name)
    want = analyzer.analyze([path], frames=("flows",)).flows
    got, totals, _ = listen_to_replays([path])
    assert len(want) and sorted_keys(got).equals(sorted_keys(want))
    assert (got["vni"] == 7).all() or name in ("geneve_gwlb.pcap", "vxlan_mirror.pcap")  # inner tunnels' VNI wins
    assert (got["outer_src_ip"] == "127.0.0.1").all()
    assert totals.received == totals.analysed == sum(int(got[c].sum()) for c in ("packets_to_server",
                                                                                 "packets_to_client"))
    assert totals.duplicates == totals.filtered == totals.dropped_queue == totals.dropped_kernel == 0


@pytest.mark.slow
def test_loopback_replay_of_every_bundled_capture() -> None:
    for path in sorted(str(p) for p in CAPTURES.iterdir() if ".pcap" in p.name):
        want = analyzer.analyze([path], frames=("flows",)).flows
        got, _, _ = listen_to_replays([path])
        assert sorted_keys(got).equals(sorted_keys(want)), path


def _frames(path: Path) -> list[bytes]:
    return [f for b in read_capture(str(path)) for f in ethernet_frames(b) if isinstance(f, bytes)]


def _send_twice(port: int, frames: list[bytes], vnis: tuple[int, int], stop: MirrorSource) -> None:
    """Every frame from two vantages (two sockets, two VNIs) back to back: a conversation whose
    two ENIs are both mirrored to one target."""
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for f in frames:
            a.sendto(struct.pack("!II", 0x08000000, vnis[0] << 8) + f, ("127.0.0.1", port))
            b.sendto(struct.pack("!II", 0x08000000, vnis[1] << 8) + f, ("127.0.0.1", port))
        deadline = time.monotonic() + 10
        while stop.counters.received < 2 * len(frames) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        a.close()
        b.close()
        stop.stop()


def _run(src: MirrorSource, sender: threading.Thread, **kw: object) -> tuple[object, LiveRun, list]:
    import pandas as pd

    run = LiveRun(src, Options(), **kw)  # type: ignore[arg-type]
    sender.start()
    try:
        windows = list(run.run())
    finally:
        sender.join()
        src.close()
    return pd.concat([w.frames["flows"] for w in windows], ignore_index=True), run, windows


def test_a_packet_mirrored_from_two_vantages_is_counted_once() -> None:
    path = CAPTURES / "smtp_starttls.pcap"
    frames = _frames(path)
    src = MirrorSource(bind="127.0.0.1", ports=(0,), geneve_ports=())
    sender = threading.Thread(target=_send_twice, args=(src.bound_ports[0], frames, (7, 8), src))
    flows, run, windows = _run(src, sender, dedup_window=1.0)
    want = analyzer.analyze([str(path)], frames=("flows",)).flows
    assert sorted_keys(flows).equals(sorted_keys(want))
    assert set(flows["vni"]) == {7}  # the first copy's vantage
    t = run.totals
    assert t.duplicates == len(frames) and t.received == 2 * len(frames)
    assert t.received == t.analysed + t.duplicates + t.filtered + t.dropped_queue
    assert "1 duplicates" not in windows[-1].summary and "50.0%" in "".join(w.summary for w in windows)


def test_without_dedup_the_two_vantages_are_two_flows() -> None:
    frames = _frames(CAPTURES / "http_plain.pcap")
    src = MirrorSource(bind="127.0.0.1", ports=(0,), geneve_ports=())
    sender = threading.Thread(target=_send_twice, args=(src.bound_ports[0], frames, (7, 8), src))
    flows, run, _ = _run(src, sender, dedup_window=0.0)
    assert sorted(flows["vni"]) == [7, 8] and run.totals.duplicates == 0


def _vx(frame: bytes, vni: int) -> bytes:
    return struct.pack("!II", 0x08000000, vni << 8) + frame


def _outer(payload: bytes, src: str) -> bytes:
    """A mirror datagram as the source synthesises it: IPv4 + UDP to 4789 + the VXLAN payload."""
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + len(payload), 0, 0, 64, 17, 0, socket.inet_aton(src),
                     socket.inet_aton("10.9.9.9"))
    return ip + struct.pack("!HHHH", 40000, 4789, 8 + len(payload), 0) + payload


def test_dedup_keeps_a_retransmission_seen_from_the_same_vantage() -> None:
    frame = _frames(CAPTURES / "http_plain.pcap")[3]
    d = Deduplicator(50_000_000)
    pkts = [_outer(_vx(frame, 7), "10.1.1.1"), _outer(_vx(frame, 7), "10.1.1.1"),  # same vantage: both kept
            _outer(_vx(frame, 7), "10.1.1.2"), _outer(_vx(frame, 9), "10.1.1.1")]  # other vantages: copies
    keep = d.keep(decode(batch_of(pkts, 101, ts=[0, 1000, 2000, 3000])))
    assert keep.tolist() == [True, True, False, False] and d.duplicates == 2
    # across batches, within the window: a copy; after it: a new packet
    assert d.keep(decode(batch_of([_outer(_vx(frame, 8), "10.1.1.3")], 101, ts=[40_000_000]))).tolist() == [False]
    assert d.keep(decode(batch_of([_outer(_vx(frame, 8), "10.1.1.3")], 101, ts=[200_000_000]))).tolist() == [True]
    # ... which is the first copy from then on: its twin from another vantage is a duplicate
    assert d.keep(decode(batch_of([_outer(_vx(frame, 5), "10.1.1.4")], 101, ts=[200_000_002]))).tolist() == [False]
    other = bytearray(frame)
    ihl = (frame[14] & 0x0F) * 4
    other[14 + ihl + (frame[14 + ihl + 12] >> 4) * 4] ^= 0xFF  # another payload (its first byte): another packet
    assert d.keep(decode(batch_of([_outer(_vx(bytes(other), 5), "10.1.1.4")], 101, ts=[200_000_001]))).tolist() == [
        True]
    assert d.duplicates == 4


def test_dedup_over_many_batches_agrees_with_a_reference_model() -> None:
    """30k packets of 6k identities from three vantages, ~5k identities live in each window, in
    batches of random sizes: the hash table grows and is emptied of expired identities on the way,
    and every decision is the reference's (the first copy of an identity within the window decides;
    the same vantage again is a retransmission; after the window a copy is a new first one)."""
    rng = np.random.default_rng(5)
    frame = _frames(CAPTURES / "http_plain.pcap")[3]
    ihl = (frame[14] & 0x0F) * 4
    at = 14 + ihl + (frame[14 + ihl + 12] >> 4) * 4  # the TCP payload
    n, window = 30_000, 50_000_000
    ident = rng.integers(0, 6000, n)
    vantage = rng.integers(0, 3, n)
    ts = np.cumsum(rng.integers(1, 20_000, n))  # ~10 us apart: ~5k packets per window
    seen: dict[int, tuple[int, int]] = {}
    want = []
    for i, v, t in zip(ident.tolist(), vantage.tolist(), ts.tolist(), strict=True):
        first = seen.get(i)
        if first is None or t - first[1] > window:
            seen[i] = (v, t)
            want.append(True)
        else:
            want.append(first[0] == v)
    d = Deduplicator(window)
    got: list[bool] = []
    k = 0
    while k < n:
        m = int(rng.integers(1, 3000))
        pkts = []
        for i, v in zip(ident[k:k + m].tolist(), vantage[k:k + m].tolist(), strict=True):
            f = bytearray(frame)
            f[at:at + 4] = i.to_bytes(4, "big")
            pkts.append(_outer(_vx(bytes(f), 7), f"10.1.1.{v + 1}"))
        got += d.keep(decode(batch_of(pkts, 101, ts=ts[k:k + m].tolist()))).tolist()
        k += m
    assert got == want and d.duplicates == want.count(False) > 1000


def test_packets_cut_by_packet_length_are_marked_truncated() -> None:
    frames = _frames(CAPTURES / "http_plain.pcap")
    big = max(frames, key=len)
    cut = [_outer(_vx(big[:60], 7), "10.1.1.1"),  # PacketLength 60: headers and a few payload bytes
           _outer(_vx(big[:40], 7), "10.1.1.1"),  # inside the TCP header
           _outer(_vx(big, 7), "10.1.1.1")]  # whole
    d = decode(batch_of(cut, 101))
    assert mark_truncated(d) == 2
    assert d.cols[:, 18].tolist() == [1, 1, 0]  # C_TRUNC


def test_a_flow_spanning_windows_is_written_once_in_the_window_it_ends() -> None:
    path = str(CAPTURES / "tls13_openssl.pcap")
    flows, _, windows = listen_to_replays([path], rate=40.0, window=0.25)  # ~0.6 s of packets
    assert len(windows) >= 3
    assert len(flows) == 1 and flows["uid"].is_unique
    assert sum(len(w.frames["flows"]) for w in windows) == 1
    assert sum(w.counters.analysed for w in windows) == 24
    assert sorted_keys(flows).equals(sorted_keys(analyzer.analyze([path], frames=("flows",)).flows))


def test_max_flows_bounds_the_table_and_says_so() -> None:
    frames = []
    for i in range(64):  # 64 one-packet UDP flows
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 29, i, 0, 64, 17, 0, socket.inet_aton(f"10.0.0.{i + 1}"),
                         socket.inet_aton("10.0.1.1"))
        frames.append(b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + struct.pack("!HHHH", 5000 + i, 53, 9, 0) + b"x")
    src = MirrorSource(bind="127.0.0.1", ports=(0,), geneve_ports=())

    def send() -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for f in frames:
            s.sendto(_vx(f, 3), ("127.0.0.1", src.bound_ports[0]))
        while src.counters.received < len(frames):
            time.sleep(0.01)
        s.close()
        src.stop()

    options = Options().with_values(max_flows=16)
    import pandas as pd

    run = LiveRun(src, options)
    t = threading.Thread(target=send)
    t.start()
    windows = list(run.run())
    t.join()
    src.close()
    flows = pd.concat([w.frames["flows"] for w in windows])
    assert len(flows) == 64 and run.totals.evicted > 0
    assert "flows_evicted" in set(pd.concat([w.frames["anomalies"] for w in windows])["kind"])


def test_durations_and_sizes() -> None:
    assert parse_duration("60s") == 60 and parse_duration("5m") == 300 and parse_duration("250ms") == 0.25
    assert parse_duration("2") == 2 and parse_size("100M") == 100 << 20 and parse_size("1G") == 1 << 30
    for bad in ("x", "-1s", "0", "9w"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    with pytest.raises(ValueError):
        parse_size("1k0")


def test_identity_ignores_ttl_and_checksums() -> None:
    frame = bytearray(_frames(CAPTURES / "http_plain.pcap")[3])
    other = bytearray(frame)
    other[14 + 8] = 3  # TTL
    other[14 + 10:14 + 12] = b"\xde\xad"  # IP checksum
    d = Deduplicator(50_000_000)
    keep = d.keep(decode(batch_of([_outer(_vx(bytes(frame), 1), "10.1.1.1"), _outer(_vx(bytes(other), 2), "10.1.1.2")],
                                  101, ts=[0, 10])))
    assert keep.tolist() == [True, False]
    assert np.asarray(keep).dtype == np.bool_


def test_each_window_is_judged_with_the_zones_and_their_vni_mapping(tmp_path: Path) -> None:
    import pandas as pd

    from analyzer.engines.live import policy_judge

    zones = tmp_path / "zones.toml"
    # two VPCs with the same CIDR: the mirror session's VNI says which one a flow belongs to
    zones.write_text('[[zone]]\nname = "blue"\ncidrs = ["10.77.0.0/16"]\nvni = [8]\n\n'
                     '[[zone]]\nname = "green"\ncidrs = ["10.77.0.0/16"]\nvni = [7]\n')
    _, _, windows = listen_to_replays([str(CAPTURES / "http_basic_auth.pcap")],
                                      judge=policy_judge(zones=str(zones)))
    flows = pd.concat([w.frames["flows"] for w in windows])
    findings = pd.concat([w.frames["findings"] for w in windows])
    assert flows["client_zone"].tolist() == ["green"] and flows["server_zone"].tolist() == ["green"]
    assert "cleartext-credentials" in set(findings["rule"])
    assert "findings" in windows[-1].summary and "1 cleartext" in windows[-1].summary


def test_a_capture_of_mirror_traffic_marks_truncation_as_the_listener_does(tmp_path: Path) -> None:
    """A pcap of a mirror target's interface (VXLAN datagrams whose inner packets a PacketLength of
    100 cut, one of them inside its TCP header) and the same datagrams received live: the same
    flows, all `truncated`, and the same anomalies (inner_packet_truncated for a cut payload,
    l4_header_truncated for the cut header); a whole datagram is not marked."""
    import pandas as pd
    from support.pcap_helpers import pcap_bytes

    frames = _frames(CAPTURES / "http_plain.pcap")
    cut = [f[:100] for f in frames]
    longest = max(range(len(frames)), key=lambda i: len(frames[i]))
    cut[longest] = frames[longest][:50]  # Ethernet 14 + IP 20 + 16 bytes of the TCP header
    payload_cuts = sum(len(f) > 100 for i, f in enumerate(frames) if i != longest)
    assert payload_cuts >= 3
    datagrams = [_vx(f, 7) for f in cut]
    path = tmp_path / "mirror-target.pcap"
    path.write_bytes(pcap_bytes([(1_700_000_000_000_000_000 + i * 1_000_000, _outer(d, "10.1.1.1"))
                                 for i, d in enumerate(datagrams)], linktype=101))
    from_file = analyzer.analyze([str(path)], frames=("flows",))
    kinds = from_file.anomalies.set_index("kind")["count"].to_dict()
    assert kinds == {"inner_packet_truncated": payload_cuts, "l4_header_truncated": 1}
    assert len(from_file.flows) == 1 and from_file.flows["truncated"].all()

    src = MirrorSource(bind="127.0.0.1", ports=(0,), geneve_ports=())

    def send() -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for d in datagrams:
                s.sendto(d, ("127.0.0.1", src.bound_ports[0]))
            deadline = time.monotonic() + 10
            while src.counters.received < len(datagrams) and time.monotonic() < deadline:
                time.sleep(0.02)
        finally:
            s.close()
            src.stop()

    flows, run, windows = _run(src, threading.Thread(target=send))
    assert sorted_keys(flows).equals(sorted_keys(from_file.flows))
    live = pd.concat([w.frames["anomalies"] for w in windows]).groupby("kind")["count"].sum().to_dict()
    assert live == kinds and run.totals.truncated == len(frames) - sum(len(f) <= 100 for f in frames)

    whole = pcap_bytes([(0, _outer(_vx(f, 7), "10.1.1.1")) for f in frames], linktype=101)
    (tmp_path / "whole.pcap").write_bytes(whole)
    again = analyzer.analyze([str(tmp_path / "whole.pcap")], frames=("flows",))
    assert not again.flows["truncated"].any() and not len(again.anomalies)


def test_window_files_stream_the_frames_the_run_keeps_in_memory(tmp_path: Path) -> None:
    """With --out, each window's frames go to their files chunk by chunk (judged by a PolicyStage per
    window): the files hold the frames and findings a run without files keeps in memory, the same
    findings the policy layer's evaluate() gives on those frames, every file complete (no temporary
    file left) and each window's stats file beside its frames."""
    import pandas as pd

    from analyzer.engines.live import policy_judge
    from analyzer.policy import build_zones, evaluate

    caps = [str(CAPTURES / n) for n in ("tls12_ecdhe_openssl.pcap", "http_basic_auth.pcap", "smtp_starttls.pcap")]
    mem_flows, _, mem_windows = listen_to_replays(caps, judge=policy_judge(vpc=["10.0.0.0/8"]))
    mem_findings = pd.concat([w.frames["findings"] for w in mem_windows], ignore_index=True)
    assert len(mem_findings) and "verdict" in mem_flows
    frames = {f: pd.concat([w.frames[f] for w in mem_windows], ignore_index=True)
              for f in ("tls", "certs", "credentials")}
    whole = evaluate(mem_flows.drop(columns=["client_zone", "server_zone", "direction", "verdict", "finding_count"]),
                     frames["tls"], frames["certs"], zones=build_zones(vpc=["10.0.0.0/8"]),
                     credentials=frames["credentials"])

    def keys(findings: pd.DataFrame) -> list[tuple[str, ...]]:  # uids differ between runs (the replay's port)
        cols = ["rule", "severity", "client_ip", "client_port", "server_ip", "server_port", "evidence", "suppressed_by"]
        return sorted(map(tuple, findings[cols].astype("string").fillna("<NA>").to_numpy().tolist()))

    assert keys(mem_findings) == keys(whole.findings)

    out = tmp_path / "out"
    _, totals, windows = listen_to_replays(caps, judge=policy_judge(vpc=["10.0.0.0/8"]), out_dir=str(out))
    names = sorted(p.name for p in out.iterdir())
    assert not [n for n in names if n.startswith(".")], names  # every file renamed from its temporary name
    stats = sorted(out.glob("stats-*.jsonl"))
    assert len(stats) == len(windows)
    for w in windows:
        assert "flows" not in w.frames and "certs" in w.frames  # streamed frames are not kept
        stamp = Path(w.files[-1]).name.removeprefix("stats-").removesuffix(".jsonl")
        assert {Path(f).name for f in w.files} == {f"{n}-{stamp}.parquet" for n in (
            "flows", "tls", "certs", "credentials", "anomalies", "findings")} | {f"stats-{stamp}.jsonl"}

    def read(frame: str) -> pd.DataFrame:
        return pd.concat([pd.read_parquet(p) for p in sorted(out.glob(f"{frame}-*.parquet"))], ignore_index=True)

    flows = read("flows")
    assert len(flows) == totals.flows == len(mem_flows)
    assert sorted_keys(flows).equals(sorted_keys(mem_flows))
    assert dict(flows.dtypes.astype(str)) == dict(mem_flows.dtypes.astype(str))
    judged = [c for c in (*KEY_COLUMNS, "client_zone", "server_zone", "direction", "verdict", "finding_count")
              if c in flows]

    def canonical(df: pd.DataFrame) -> pd.DataFrame:
        return df[judged].astype("string").fillna("<NA>").sort_values(judged).reset_index(drop=True)

    assert canonical(flows).equals(canonical(mem_flows))
    assert keys(read("findings")) == keys(mem_findings)
    assert len(read("tls")) == len(frames["tls"]) and len(read("credentials")) == len(frames["credentials"])
    assert sum(w.counters.flows for w in windows) == len(flows)
    assert f"{len(mem_findings)} findings" in " ".join(w.summary for w in windows) or len(windows) > 1


def test_a_run_given_up_mid_window_leaves_no_temporary_file(tmp_path: Path) -> None:
    """The window being filled streams to temporary files; when the run is given up (the generator
    closed, e.g. a second Ctrl-C), they are removed: only the closed windows' files remain."""
    src = MirrorSource(bind="127.0.0.1", ports=(0,), geneve_ports=())
    run = LiveRun(src, Options(), window=0.2, out_dir=str(tmp_path), judge=None)
    gen = run.run()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.sendto(_vx(_frames(CAPTURES / "http_plain.pcap")[0], 3), ("127.0.0.1", src.bound_ports[0]))
        first = next(gen)  # a closed window; the next one's files are open under temporary names
        assert [p for p in tmp_path.iterdir() if p.name.startswith(".") and p.name.endswith(".part")]
        gen.close()
    finally:
        s.close()
        src.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["status.json", *(Path(f).name for f in first.files)])


class _Recorder:
    """Stands in for a window's Collector: the chunks handed to it, in order."""

    def __init__(self) -> None:
        self.added: list[object] = []
        self.shed: list[object] = []  # the chunks handed over with facts instead of being dissected
        self.facts: list[object] = []

    def add(self, ended: object, dissected: list | None = None) -> None:
        self.added.append(ended)
        if dissected is not None:
            self.shed.append(ended)
            self.facts += [f for _, f in dissected]


def _chunk(flows: int, payload_bytes: int) -> object:
    from analyzer.flows.payload import FlowPayload
    from analyzer.flows.table import EndedFlows

    payloads = [FlowPayload(f"C{i}", "tcp", "10.0.0.1", "10.0.0.2", 40000 + i, 443, 0.0) for i in range(flows)]
    return EndedFlows({"uid": [f"C{i}" for i in range(flows)]}, payloads, payload_bytes)


def test_a_window_past_its_end_closes_in_steps_at_quiet_moments(tmp_path: Path) -> None:
    """A close cannot be shed: begun on a busy receive queue it overflowed the socket. Past its end a
    window goes a step per turn, each while at most FOLD_BACKLOG of the queue is in use: its gathered
    flows staged as a fold (no work), the fold's steps (judged, to the files' buffers), the other
    frames' rows, the files' flush, then the close; past the grace it closes at once, busy or not.
    Nothing is lost on the way: the flows file holds every flow."""
    import pandas as pd

    from analyzer.engines import live
    from analyzer.engines.live import policy_judge

    src = MirrorSource(bind="127.0.0.1", ports=(0,), geneve_ports=())
    try:
        run = LiveRun(src, Options(), window=8.0, out_dir=str(tmp_path), judge=policy_judge(vpc=["10.0.0.0/8"]))
        assert run.close_grace_ns == 2 * 10**9  # a quarter of the window, under CLOSE_GRACE_S
        start = time.time_ns()
        current = run._open(start)
        collector, flows = current.collector, current.sinks["flows"]
        for b in read_capture(str(CAPTURES / "ftp_login.pcap")):
            for ended in run.table.feed(decode(b, run.options.decode)):
                collector.add(ended)
        for ended in run.table.flush_iter():
            collector.add(ended)
        gathered = collector.pending_rows
        assert gathered == 2 and not flows._pending
        share = {"now": live.FOLD_BACKLOG + 0.01}
        src.backlog = lambda: share["now"]  # type: ignore[method-assign]
        assert not run._ready(current, 0)  # the gathered flows staged as a fold: no work yet
        assert collector.pending_rows == 0 and collector.folds_staged == 1 and not flows._pending
        share["now"] = live.FOLD_BACKLOG
        assert not run._ready(current, 0)  # the fold is still staged: its steps come first
        while collector.advance():  # (_windows takes them, a step per turn)
            assert not flows._pending
        assert sum(t.num_rows for t in flows._pending) == gathered  # judged, in the file's buffer
        run._folded = True
        assert not run._ready(current, 0)  # a fold's step ran in this turn: nothing more in it
        run._folded = False
        share["now"] = live.FOLD_BACKLOG + 0.01
        assert not run._ready(current, 10**9)  # busy: nothing done
        share["now"] = live.FOLD_BACKLOG
        assert not run._ready(current, 10**9)  # the other frames' rows
        assert flows._pending
        assert not run._ready(current, 10**9)  # the flush: written as a row group
        assert not flows._pending
        assert run._ready(current, 10**9)
        late = _chunk(2, 1)  # ended flows that wait for their dissection past the close: the next window's
        run._defer(late, collector)  # type: ignore[arg-type]
        window = run._close(current, start, time.time_ns(), final=False)
        assert list(run._pending) == [late] and run._pending_flows == 2  # not dissected in the close
        run._pending.clear()
        got = pd.read_parquet(next(f for f in window.files if "/flows-" in f))
        assert len(got) == gathered == window.counters.flows
        assert set(got["app_protocol"]) == {"ftp", "ftp-data"}  # dissected, judged as any other
        busy = run._open(time.time_ns())  # the next window: its steps start again
        share["now"] = 1.0
        assert not run._ready(busy, run.close_grace_ns - 1)
        assert run._ready(busy, run.close_grace_ns)  # past the grace: at once, however busy
        busy.abort()
    finally:
        src.close()


def test_ended_flows_wait_while_datagrams_are_queued_and_stay_bounded() -> None:
    from analyzer.engines import live

    src = MirrorSource(bind="127.0.0.1", ports=(0,), geneve_ports=())
    try:
        run = LiveRun(src, Options(), window=60.0)
        rec = _Recorder()
        chunks = [_chunk(3, 10) for _ in range(4)]
        share = {"now": live.QUIET_BACKLOG + 0.01}  # the receive thread has batches waiting: they come first
        src.backlog = lambda: share["now"]  # type: ignore[method-assign]
        for c in chunks:
            run._defer(c, rec)  # type: ignore[arg-type]
        run._work(rec)  # type: ignore[arg-type]
        assert rec.added == [] and run.deferred_peak == 12
        share["now"] = live.QUIET_BACKLOG  # (almost) nothing waits: the chunks are dissected, oldest first
        run._turn_t0 = time.perf_counter() - 2 * live.FORCED_TURN_S  # ... but not past this batch's turn
        run._work(rec)  # type: ignore[arg-type]
        assert rec.added == []
        run._turn_t0 = time.perf_counter()
        run._work(rec)  # type: ignore[arg-type]
        assert rec.added == chunks
        # bounded by count: beyond PENDING_CHUNKS the oldest goes at once, queue or not
        share["now"] = 0.5
        many = [_chunk(1, 1) for _ in range(live.PENDING_CHUNKS + 3)]
        for c in many:
            run._defer(c, rec)  # type: ignore[arg-type]
        assert rec.added[4:] == many[:3] and len(run._pending) == live.PENDING_CHUNKS
        run._work(rec, everything=True)  # type: ignore[arg-type]  # the shutdown takes them all
        assert rec.added[4:] == many and not run._pending and run._pending_bytes == 0
        # bounded by payload bytes: the memory budget's in-flight share
        big = [_chunk(1, run._pending_limit // 2 + 1) for _ in range(3)]
        for c in big:
            run._defer(c, rec)  # type: ignore[arg-type]
        assert rec.added[-2:] == big[:2] and list(run._pending) == big[2:]
    finally:
        src.close()


def test_behind_with_the_receive_queue_filling_the_work_that_cannot_wait_is_shed() -> None:
    """The waiting flows at their bound (or the shutdown) while the receive queue is more than
    SHED_BACKLOG full: the oldest chunk is counted without its dissection (undecided_reason "shed"),
    so the queue keeps draining; below that share, or with shed=False, it is dissected as before."""
    from analyzer.engines import live

    src = MirrorSource(bind="127.0.0.1", ports=(0,), geneve_ports=())
    try:
        run = LiveRun(src, Options(), window=60.0)
        rec = _Recorder()
        share = {"now": live.SHED_BACKLOG + 0.05}
        src.backlog = lambda: share["now"]  # type: ignore[method-assign]
        many = [_chunk(2, 1) for _ in range(live.PENDING_CHUNKS + 2)]
        for c in many:
            run._defer(c, rec)  # type: ignore[arg-type]
        assert rec.added == many[:2] and rec.shed == many[:2] and run.totals.shed == 4
        assert [f.flow for f in rec.facts] == [{"undecided_reason": "shed"}] * 4  # type: ignore[attr-defined]
        run._work(rec)  # type: ignore[arg-type]  # not forced: they wait for the queue to empty, as before
        assert len(rec.added) == 2
        share["now"] = live.SHED_BACKLOG - 0.01  # the queue has room: the shutdown dissects them all
        run._work(rec, everything=True)  # type: ignore[arg-type]
        assert rec.added == many and len(rec.shed) == 2 and run.totals.shed == 4
        share["now"] = 1.0  # the shutdown while far behind: shed too, and counted
        run._defer(_chunk(3, 1), rec)  # type: ignore[arg-type]
        run._work(rec, everything=True)  # type: ignore[arg-type]
        assert len(rec.shed) == 3 and run.totals.shed == 7
        # the queue looks short, but this batch's turn has run FORCED_TURN_S of forced work already: the
        # receive thread may not have had the interpreter meanwhile (the socket fills unseen): shed
        share["now"] = 0.0
        run._turn_t0 = time.perf_counter() - 2 * live.FORCED_TURN_S
        run._defer(_chunk(2, 1), rec)  # type: ignore[arg-type]
        run._work(rec, everything=True)  # type: ignore[arg-type]
        assert len(rec.shed) == 4 and run.totals.shed == 9
        src.stop()  # but not at the shutdown: nothing arrives any more, every flow is dissected
        run._defer(_chunk(2, 1), rec)  # type: ignore[arg-type]
        run._work(rec, everything=True)  # type: ignore[arg-type]
        assert len(rec.shed) == 4 and run.totals.shed == 9
        run._turn_t0 = time.perf_counter()
        kept = LiveRun(src, Options(), window=60.0, shed=False)  # listen --no-shed: never
        rec2 = _Recorder()
        kept._defer(_chunk(3, 1), rec2)  # type: ignore[arg-type]
        kept._work(rec2, everything=True)  # type: ignore[arg-type]
        assert len(rec2.added) == 1 and rec2.shed == [] and kept.totals.shed == 0
    finally:
        src.close()


def test_shed_flows_are_counted_and_said_in_the_window_and_the_flows_file() -> None:
    """End to end through a real Collector: a shed chunk's flows are rows of the flows frame with
    undecided_reason "shed" (no dissection columns), the window's counters and its summary line say
    how many."""
    import pandas as pd

    src = MirrorSource(bind="127.0.0.1", ports=(0,), geneve_ports=())
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        run = LiveRun(src, Options(), window=30.0, judge=None)
        src.backlog = lambda: 1.0  # type: ignore[method-assign]  # always far behind
        inner = run._defer

        def defer_forced(ended, collector):  # type: ignore[no-untyped-def]
            inner(ended, collector)
            run._work(collector, everything=True)  # every chunk must go at once (as at the bound)

        run._defer = defer_forced  # type: ignore[method-assign]
        for frame in _frames(CAPTURES / "http_plain.pcap"):
            s.sendto(_vx(frame, 7), ("127.0.0.1", src.bound_ports[0]))
        threading.Timer(1.0, src.stop).start()
        windows = list(run.run())
    finally:
        s.close()
        src.close()
    flows = pd.concat([w.frames["flows"] for w in windows])
    with_payload = flows[(flows["payload_bytes_to_server"] + flows["payload_bytes_to_client"]) > 0]
    assert len(with_payload) and (with_payload["undecided_reason"] == "shed").all()
    assert with_payload["app_protocol"].isna().all() and with_payload["encrypted"].isna().all()
    assert sum(w.counters.shed for w in windows) == len(with_payload) == run.totals.shed
    assert any("not dissected: the analysis was behind" in w.summary for w in windows)


def test_a_full_chunk_of_flows_is_judged_and_written_a_step_per_batch(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunk of FLOW_ROWS_PER_FRAME flows is folded a step per batch (Collector.advance): its Arrow
    columns, each stage (the policy's judging among them), its writing; so the analysis thread is
    never held for the whole fold (~0.4 s at 16k flows) while datagrams queue. Nothing of the
    chunk reaches the file before its last step; everything does by then, judged as in one piece."""
    import pandas as pd

    from analyzer import pipeline
    from analyzer.engines.live import policy_judge

    monkeypatch.setattr(pipeline, "FLOW_ROWS_PER_FRAME", 2)
    src = MirrorSource(bind="127.0.0.1", ports=(0,), geneve_ports=())
    try:
        run = LiveRun(src, Options(), window=60.0, out_dir=str(tmp_path), judge=policy_judge(vpc=["10.0.0.0/8"]))
        start = time.time_ns()
        current = run._open(start)
        collector, flows = current.collector, current.sinks["flows"]
        assert collector.staged
        for b in read_capture(str(CAPTURES / "ftp_login.pcap")):
            for ended in run.table.feed(decode(b, run.options.decode)):
                collector.add(ended)
        for ended in run.table.flush_iter():
            collector.add(ended)
        assert collector.pending_rows == 0 and collector.folds_staged == 1  # the chunk filled: staged, not folded
        assert not flows._pending
        steps = 1
        while collector.advance():
            steps += 1
            assert not flows._pending  # not written before its last step
        assert steps == 2 + len(collector.plan.stages)  # columns, each stage, the writing
        assert sum(t.num_rows for t in flows._pending) == 2
        assert not collector.advance()  # nothing staged any more
        window = run._close(current, start, time.time_ns(), final=False)
        got = pd.read_parquet(next(f for f in window.files if "/flows-" in f))
        assert len(got) == 2 == window.counters.flows
        assert set(got["app_protocol"]) == {"ftp", "ftp-data"}
        findings = pd.read_parquet(next(f for f in window.files if "/findings-" in f))
        assert "cleartext-credentials" in set(findings["rule"])  # judged
    finally:
        src.close()


@pytest.mark.parametrize("advance_every", [1, 3, None])
def test_a_staged_collector_gives_the_frames_of_an_unstaged_one(monkeypatch: pytest.MonkeyPatch,
                                                                advance_every: int | None) -> None:
    """Staged or not, and however often the engine advances (None: never; finish folds what is left),
    the flows, tls and findings frames are the same, in the same order."""
    from analyzer import pipeline
    from analyzer.engines.live import policy_judge
    from analyzer.flows.table import FlowTable
    from analyzer.pipeline import Collector, Plan

    monkeypatch.setattr(pipeline, "FLOW_ROWS_PER_FRAME", 2)
    opts = Options()
    ended = []
    for name in ("http_plain.pcap", "cert_good_chain_tls12.pcap", "ftp_login.pcap", "dns_dnsmasq.pcap",
                 "imap_starttls.pcap"):
        table = FlowTable(opts.flows)  # (a table per capture: an export each, chunks of several sizes)
        for b in read_capture(str(CAPTURES / name)):
            ended.extend(table.update(decode(b, opts.decode)))
        ended.extend(table.flush())
    assert sum(len(e) for e in ended) >= 8 and len(ended) == 5  # several chunks of 2
    frames = []
    for staged in (False, True):
        stage = policy_judge(vpc=["10.0.0.0/8"])()
        c = Collector(opts, Plan.make(opts, stages=[stage]), key=b"k" * 32, staged=staged)  # (one secrets key)
        for k, e in enumerate(ended):
            c.add(e)
            if staged and advance_every and k % advance_every == 0:
                c.advance()
        analysis = c.finish([], {})
        frames.append({"flows": analysis.flows, "tls": analysis.tls, "credentials": analysis.credentials,
                       "findings": stage.findings()})
    for name, a in frames[0].items():
        b = frames[1][name]
        diff = [c for c in a.columns if not a[c].equals(b[c])]
        assert len(a) and not diff, (name, diff, [(a[c].tolist(), b[c].tolist()) for c in diff[:2]])
    assert "cleartext-credentials" in set(frames[1]["findings"]["rule"])
