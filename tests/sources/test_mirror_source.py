"""The UDP mirror source (analyzer.sources.mirror) and the replayer's framing (analyzer.sources.replay):
loopback only."""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from support.cmsg_helpers import cmsg_writer
from support.pcap_helpers import batch_of

from analyzer.config import DecodeOptions
from analyzer.decode import decode, decoded_frame
from analyzer.errors import UsageError
from analyzer.sources import _mmsg
from analyzer.sources.mirror import MirrorSource, parse_allow
from analyzer.sources.replay import ethernet_frames, parse_target


@pytest.fixture
def sockets() -> Iterator[Callable[..., socket.socket]]:
    """Makes sending sockets, closed at the end of the test."""
    made: list[socket.socket] = []

    def make(family: int = socket.AF_INET) -> socket.socket:
        made.append(socket.socket(family, socket.SOCK_DGRAM))
        return made[-1]

    yield make
    for s in made:
        s.close()


ETH = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00"


def _udp_frame(payload: bytes = b"hello") -> bytes:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + len(payload), 1, 0, 64, 17, 0, socket.inet_aton("10.0.0.1"),
                     socket.inet_aton("10.0.0.2"))
    return ETH + ip + struct.pack("!HHHH", 1234, 53, 8 + len(payload), 0) + payload


def _vx(frame: bytes, vni: int) -> bytes:
    return struct.pack("!II", 0x08000000, vni << 8) + frame


def _collect(src: MirrorSource, want: int) -> list:
    got, out = 0, []
    for b in src.batches():
        out.append(b)
        got += len(b)
        if src.counters.received >= want:
            src.stop()
    return out


def test_datagrams_become_packets_the_decoder_decapsulates(sockets: Callable[..., socket.socket]) -> None:
    src = MirrorSource(bind="127.0.0.1", ports=(0,), geneve_ports=())
    s = sockets()
    for vni in (5, 6, 7):
        s.sendto(_vx(_udp_frame(), vni), ("127.0.0.1", src.bound_ports[0]))
    batches = [b for b in _collect(src, 3) if len(b)]
    src.close()
    rows = decoded_frame(decode(batches[0], DecodeOptions(src.vxlan_ports, src.geneve_ports)))
    assert rows["vni"].tolist() == [5, 6, 7] and set(rows["tunnel"]) == {"vxlan"}
    assert set(rows["src_ip"]) == {"10.0.0.1"} and set(rows["outer_src_ip"]) == {"127.0.0.1"}
    assert not rows["truncated"].any() and src.counters.received == src.counters.yielded == 3
    assert src.granted_rcvbuf > 0 and src.name.startswith("udp:127.0.0.1:")


def test_ipv6_senders_get_an_ipv6_outer_header(sockets: Callable[..., socket.socket]) -> None:
    try:
        src = MirrorSource(bind="::1", ports=(0,), geneve_ports=())
    except UsageError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    s = sockets(socket.AF_INET6)
    s.sendto(_vx(_udp_frame(), 9), ("::1", src.bound_ports[0]))
    batches = [b for b in _collect(src, 1) if len(b)]
    src.close()
    rows = decoded_frame(decode(batches[0], DecodeOptions(src.vxlan_ports, ())))
    assert rows["outer_src_ip"].tolist() == ["::1"] and rows["vni"].tolist() == [9]


def test_allow_drops_and_counts_other_senders(sockets: Callable[..., socket.socket]) -> None:
    src = MirrorSource(bind="127.0.0.1", ports=(0,), geneve_ports=(), allow=["10.0.0.0/8"])
    s = sockets()
    for _ in range(4):
        s.sendto(_vx(_udp_frame(), 1), ("127.0.0.1", src.bound_ports[0]))
    batches = _collect(src, 4)
    src.close()
    assert sum(len(b) for b in batches) == 0
    assert src.counters.received == src.counters.filtered == 4
    allowed = MirrorSource(bind="127.0.0.1", ports=(0,), geneve_ports=(), allow=["127.0.0.0/8", "::1"])
    s.sendto(_vx(_udp_frame(), 1), ("127.0.0.1", allowed.bound_ports[0]))
    assert sum(len(b) for b in _collect(allowed, 1)) == 1 and allowed.counters.filtered == 0
    allowed.close()
    with pytest.raises(UsageError, match="--allow 'x/8'"):
        parse_allow(["x/8"])


def test_stop_refuses_new_datagrams_but_analyses_the_queued_ones(sockets: Callable[..., socket.socket]) -> None:
    src = MirrorSource(bind="127.0.0.1", ports=(0,), geneve_ports=())
    s = sockets()
    for _ in range(100):
        s.sendto(_vx(_udp_frame(), 1), ("127.0.0.1", src.bound_ports[0]))
    src.stop()  # before reading anything: the 100 queued are still analysed
    it = src.batches()
    first = next(it)
    s.sendto(_vx(_udp_frame(), 1), ("127.0.0.1", src.bound_ports[0]))  # after the stop: refused
    rest = list(it)
    src.close()
    assert len(first) + sum(len(b) for b in rest) == 100
    assert src.counters.received == 100 and src.counters.dropped_queue == 0


def test_two_ports_vxlan_and_geneve(sockets: Callable[..., socket.socket]) -> None:
    src = MirrorSource(bind="127.0.0.1", ports=(0,), geneve_ports=(0,))
    assert len(src.vxlan_ports) == len(src.geneve_ports) == 1 and src.vxlan_ports != src.geneve_ports
    s = sockets()
    geneve = struct.pack("!BBHI", 0, 0, 0x6558, 77 << 8) + _udp_frame()
    s.sendto(_vx(_udp_frame(), 3), ("127.0.0.1", src.vxlan_ports[0]))
    s.sendto(geneve, ("127.0.0.1", src.geneve_ports[0]))
    batches = [b for b in _collect(src, 2) if len(b)]
    src.close()
    rows = decoded_frame(decode(batches[0] if len(batches) == 1 else _concat(batches),
                                DecodeOptions(src.vxlan_ports, src.geneve_ports)))
    assert sorted(rows["tunnel"]) == ["geneve", "vxlan"] and sorted(rows["vni"]) == [3, 77]


def _concat(batches: list) -> object:
    frames = [b.packet(i) for b in batches for i in range(len(b))]
    return batch_of(frames, 101)


def test_a_port_in_use_is_one_line() -> None:
    first = MirrorSource(bind="127.0.0.1", ports=(0,), geneve_ports=())
    with pytest.raises(UsageError, match=f"cannot listen on 127.0.0.1 port {first.bound_ports[0]}"):
        MirrorSource(bind="127.0.0.1", ports=first.bound_ports, geneve_ports=())
    first.close()
    with pytest.raises(UsageError, match="not an IP address"):
        MirrorSource(bind="localhost")


def test_replay_frames_other_link_types_as_ethernet() -> None:
    ip = _udp_frame()[14:]
    raw = batch_of([ip, b"\x45" + bytes(3), b"\x00" * 8], 101)
    frames = list(ethernet_frames(raw))
    assert frames[0] == frames[0][:12] + b"\x08\x00" + ip and frames[2] == "raw packet that is not IP"
    sll = batch_of([bytes(14) + b"\x08\x00" + ip], 113)
    (frame,) = ethernet_frames(sll)
    assert frame[12:] == b"\x08\x00" + ip
    wifi = batch_of([bytes(30)], 105)
    assert list(ethernet_frames(wifi)) == ["link type 105"]
    assert parse_target("[fd00::5]:4789") == ("fd00::5", 4789) and parse_target("h:1") == ("h", 1)
    for bad in ("h", "h:0", ":4789", "h:x"):
        with pytest.raises(UsageError):
            parse_target(bad)
    assert np.all(raw.linktype == 101)


def test_replay_paces_by_rate_and_by_the_captures_own_clock(tmp_path, sockets) -> None:  # type: ignore[no-untyped-def]
    import time

    from support.live_helpers import synthetic_tcp_pcap

    from analyzer.sources.replay import replay

    path = str(tmp_path / "one.pcap")
    assert synthetic_tcp_pcap(path, 1, gap_ns=100_000_000) == 8  # 8 packets over 0.7 s
    sink = sockets()
    sink.bind(("127.0.0.1", 0))
    port = sink.getsockname()[1]
    t0 = time.monotonic()
    fast = replay(path, "127.0.0.1", port, speed=2.0)
    took = time.monotonic() - t0
    assert fast.sent == 8 and 0.3 <= fast.seconds <= took and fast.seconds < 1.5
    by_rate = replay(path, "127.0.0.1", port, rate=20.0)  # 7 intervals of 50 ms
    assert by_rate.sent == 8 and 0.3 <= by_rate.seconds < 1.5
    unpaced = replay(path, "127.0.0.1", port, vni=5)
    assert unpaced.sent == 8 and unpaced.seconds < 0.3 and "sent 8 of 8 packets" in unpaced.line()
    got = []
    sink.settimeout(1)
    for _ in range(24):
        got.append(sink.recv(2048))
    assert all(g[:4] == b"\x08\x00\x00\x00" for g in got) and got[-1][4:7] == b"\x00\x00\x05"
    with pytest.raises(UsageError, match="not both"):
        replay(path, "127.0.0.1", port, rate=1.0, speed=1.0)


def test_a_listener_on_any_address_knows_which_target_address_each_datagram_was_sent_to(
        sockets: Callable[..., socket.socket]) -> None:
    """IP_PKTINFO: bound to 0.0.0.0, the synthesised outer destination is the address the mirror
    session sent to (here two loopback addresses), counted per target; without recvmmsg it is the
    bound address."""
    for mmsg in (True, False):
        if mmsg and not _mmsg.available():
            continue
        src = MirrorSource(bind="0.0.0.0", ports=(0,), geneve_ports=(), mmsg=mmsg)
        s = sockets()
        for vni, target in ((5, "127.0.0.1"), (6, "127.0.0.2"), (7, "127.0.0.2")):
            s.sendto(_vx(_udp_frame(), vni), (target, src.bound_ports[0]))
        batches = [b for b in _collect(src, 3) if len(b)]
        src.close()
        rows = decoded_frame(decode(batches[0] if len(batches) == 1 else _concat(batches),
                                    DecodeOptions(src.vxlan_ports, ())))
        by_vni = dict(zip(rows["vni"], rows["outer_dst_ip"], strict=True))
        if mmsg:
            assert by_vni == {5: "127.0.0.1", 6: "127.0.0.2", 7: "127.0.0.2"}
            assert src.targets == {"127.0.0.1": 1, "127.0.0.2": 2} and src.receiver == "recvmmsg"
        else:
            assert set(by_vni.values()) == {"0.0.0.0"} and src.targets == {"0.0.0.0": 3}
        assert src.counters.received == src.counters.yielded == 3 and src.counters.syscalls >= 1


def test_recvmmsg_and_recvfrom_give_the_same_packets(sockets: Callable[..., socket.socket]) -> None:
    """The two receivers make byte-identical packets (outer header included) of the same datagrams,
    IPv4 and a datagram longer than a slot (it spills and is moved to the end of the batch)."""
    if not _mmsg.available():
        pytest.skip("recvmmsg is not available here")
    payloads = [b"x" * n for n in (1, 100, 1400, 5000, 30000, 60000, 7)]
    got = {}
    for mmsg in (True, False):
        src = MirrorSource(bind="127.0.0.1", ports=(0,), geneve_ports=(), mmsg=mmsg)
        s = sockets()
        for i, p in enumerate(payloads):
            s.sendto(_vx(_udp_frame(p), i), ("127.0.0.1", src.bound_ports[0]))
        batches = [b for b in _collect(src, len(payloads)) if len(b)]
        src.close()
        packets = [b.packet(i) for b in batches for i in range(len(b))]
        assert all(p[20:24] == struct.pack("!HH", s.getsockname()[1], src.bound_ports[0]) for p in packets)
        got[mmsg] = [p[:20] + p[24:] for p in packets]  # the ports differ from run to run
        if mmsg:
            rows = decoded_frame(decode(batch_of(packets, 101), DecodeOptions(src.vxlan_ports, ())))
            assert rows["vni"].tolist() == list(range(len(payloads))) and not rows["truncated"].any()
        assert all(len(b.caplen) == len(b.wirelen) and (b.caplen == b.wirelen).all() for b in batches)
        assert src.counters.oversize == 0 and src.counters.received_bytes == sum(len(_vx(_udp_frame(p), 0))
                                                                                 for p in payloads)
    assert got[True] == got[False] and len(got[True]) == len(payloads)


def test_cmsgs_of_mixed_layouts_are_read_for_every_message() -> None:
    """parse_cmsgs walks each message's ancillary data: the drop count appears only once the socket
    dropped something, so messages of one batch can differ in layout."""
    ctl = np.zeros((4, _mmsg.CTL), np.uint8)
    put = cmsg_writer(ctl)

    ts = struct.pack("<qq", 1_700_000_000, 5)
    v4 = struct.pack("<i", 1) + socket.inet_aton("10.0.0.9") + socket.inet_aton("10.0.0.7")
    v6 = socket.inet_pton(socket.AF_INET6, "fd00::7") + struct.pack("<i", 1)
    used = [put(0, put(0, 0, 1, 35, ts), 0, 8, v4)]
    used.append(put(1, put(1, put(1, 0, 1, 35, ts), 1, 40, struct.pack("<I", 12)), 0, 8, v4))
    used.append(put(2, put(2, 0, 1, 35, ts), 41, 50, v6))
    used.append(0)
    stamp, drops, dst, have = _mmsg.parse_cmsgs(ctl, np.array(used, np.uint64))
    assert stamp.tolist() == [1_700_000_000_000_000_005] * 3 + [-1]
    assert drops.tolist() == [-1, 12, -1, -1] and have.tolist() == [True, True, True, False]
    assert [socket.inet_ntop(socket.AF_INET6, bytes(d)) for d in dst[:3]] == ["::ffff:10.0.0.7"] * 2 + ["fd00::7"]


def test_kernel_drops_and_received_add_up_to_what_was_sent(sockets: Callable[..., socket.socket]) -> None:
    """A receive buffer far too small for a burst: what the kernel dropped is counted (SO_RXQ_OVFL
    on the messages after the drop, /proc/net/udp), what it kept is received; together: all."""
    if os.geteuid() != 0:
        pytest.skip("a receive buffer below net.core.rmem_default needs CAP_NET_ADMIN (SO_RCVBUFFORCE)")
    for mmsg in (True, False) if _mmsg.available() else (False,):
        src = MirrorSource(bind="127.0.0.1", ports=(0,), geneve_ports=(), rcvbuf=8192, mmsg=mmsg)
        s = sockets()
        sent = 500
        for _ in range(sent):
            s.sendto(_vx(_udp_frame(b"y" * 1000), 1), ("127.0.0.1", src.bound_ports[0]))
        src.stop()  # the burst is over: read what is queued
        got = sum(len(b) for b in src.batches())
        drops = src.kernel_drops()
        src.close()
        assert drops > 0 and got == src.counters.received and got + drops == sent, (mmsg, got, drops)


def test_the_shutdown_drain_goes_on_past_a_batch_of_filtered_datagrams(sockets: Callable[..., socket.socket]) -> None:
    """Queued at the stop: whole batches from a sender outside --allow, then allowed ones; the drain
    reads them all (the filtered ones counted), nothing is left to be a queue drop."""
    for mmsg in (True, False) if _mmsg.available() else (False,):
        src = MirrorSource(bind="127.0.0.1", ports=(0,), geneve_ports=(), allow=["127.0.0.2/32"], batch_packets=32,
                           mmsg=mmsg)
        stray, allowed = sockets(), sockets()
        allowed.bind(("127.0.0.2", 0))
        for _ in range(200):
            stray.sendto(_vx(_udp_frame(), 1), ("127.0.0.1", src.bound_ports[0]))
        for _ in range(5):
            allowed.sendto(_vx(_udp_frame(), 2), ("127.0.0.1", src.bound_ports[0]))
        src.stop()
        got = sum(len(b) for b in src.batches())
        src.close()
        c = src.counters
        assert (got, c.filtered, c.dropped_queue, c.received) == (5, 200, 0, 205), (mmsg, c)


def test_the_receive_thread_reads_a_steady_stream_in_few_calls(sockets: Callable[..., socket.socket]) -> None:
    """Datagrams arriving every millisecond are not read one wake-up (one recvmmsg and a GIL hand-over)
    at a time: the receive thread sleeps `coalesce` and reads what came meanwhile, so its calls are
    bounded by the stream's duration (a few per batch of `max_delay`), not by its datagrams. Every
    datagram is still yielded, in order."""
    if not _mmsg.available():
        pytest.skip("recvmmsg is not available here")
    import threading
    import time

    src = MirrorSource(bind="127.0.0.1", ports=(0,), geneve_ports=(), max_delay=0.1, coalesce=0.05)
    assert src.threaded
    s = sockets()
    sent = 120
    took = [0.0]

    def send() -> None:
        t0 = time.monotonic()
        for i in range(sent):
            s.sendto(_vx(_udp_frame(), i + 1), ("127.0.0.1", src.bound_ports[0]))
            time.sleep(0.001)
        took[0] = time.monotonic() - t0
        time.sleep(0.2)
        src.stop()

    sender = threading.Thread(target=send)
    sender.start()
    batches = [b for b in src.batches() if len(b)]
    sender.join()
    src.close()
    rows = decoded_frame(decode(_concat(batches), DecodeOptions(src.vxlan_ports, ())))
    assert rows["vni"].tolist() == list(range(1, sent + 1)) and src.counters.received == sent
    # at most a wake-up, two coalescing sleeps and a pause's select() per batch of 0.1 s; without the
    # coalescing it is one call per datagram (120) unless the sender stalls for seconds
    bound = 5 * (took[0] / 0.1 + 2)
    assert src.counters.syscalls <= min(bound, sent - 10), (src.counters.syscalls, took[0])
