"""The flow table: keys with tunnel identity, orientation, counters, Zeek conn_state, retransmissions,
timeouts, port reuse, deterministic uids, fragments and the per-direction payload prefixes."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, fragment6
from scapy.layers.ipsec import ESP
from scapy.layers.l2 import GRE
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw
from support.pcap_helpers import batch_of, eth, table_run, write_packets

import analyzer
import analyzer.flows._kernel as FK
from analyzer._native import source_function
from analyzer.decode import decode
from analyzer.flows.table import FlowOptions, FlowTable

C, S = "10.0.0.1", "10.0.0.2"
CP, SP = 40000, 443
T0 = 1_700_000_000.0
CAPTURES = Path(__file__).resolve().parents[2] / "captures"


def tcp(
    direction: str,
    flags: str = "A",
    seq: int = 0,
    ack: int = 0,
    data: bytes = b"",
    *,
    cport: int = CP,
    sport: int = SP,
    client: str = C,
    server: str = S,
):  # type: ignore[no-untyped-def]
    if direction == "c":
        pkt = IP(src=client, dst=server) / TCP(sport=cport, dport=sport, flags=flags, seq=seq, ack=ack)
    else:
        pkt = IP(src=server, dst=client) / TCP(sport=sport, dport=cport, flags=flags, seq=seq, ack=ack)
    return eth() / pkt / Raw(data) if data else eth() / pkt


def udp(direction: str, data: bytes = b"x", cport: int = 5353, sport: int = 53):  # type: ignore[no-untyped-def]
    if direction == "c":
        return eth() / IP(src=C, dst=S) / UDP(sport=cport, dport=sport) / Raw(data)
    return eth() / IP(src=S, dst=C) / UDP(sport=sport, dport=cport) / Raw(data)


def run(tmp_path, packets, times=None, **options):  # type: ignore[no-untyped-def]
    path = write_packets(tmp_path / "f.pcap", packets, times, start=T0)
    return table_run(path, **options)


def only(df: pd.DataFrame) -> pd.Series:
    assert len(df) == 1, df
    return df.iloc[0]


HANDSHAKE = [tcp("c", "S", 1000), tcp("s", "SA", 5000, 1001), tcp("c", "A", 1001, 5001)]


# --------------------------------------------------------------------------------- counters
def test_bidirectional_counters_and_times(tmp_path):
    pkts = [
        *HANDSHAKE,
        tcp("c", "PA", 1001, 5001, b"hello"),
        tcp("s", "PA", 5001, 1006, b"world!!"),
        tcp("c", "FA", 1006, 5008),
        tcp("s", "FA", 5008, 1007),
        tcp("c", "A", 1007, 5009),
    ]
    times = [T0 + i * 0.25 for i in range(len(pkts))]
    row = only(run(tmp_path, pkts, times)[0])
    assert (row["client_ip"], row["client_port"], row["server_ip"], row["server_port"]) == (C, CP, S, SP)
    assert (row["packets_to_server"], row["packets_to_client"]) == (5, 3)
    assert row["ip_bytes_to_server"] == sum(len(p) - 14 for p in pkts if p[IP].src == C)
    assert row["ip_bytes_to_client"] == sum(len(p) - 14 for p in pkts if p[IP].src == S)
    assert (row["payload_bytes_to_server"], row["payload_bytes_to_client"]) == (5, 7)
    assert row["ts_start"] == 1_700_000_000_000_000_000
    assert row["ts_end"] == 1_700_000_001_750_000_000
    assert row["duration"] == pytest.approx(1.75)
    assert (row["tcp_flags_to_server"], row["tcp_flags_to_client"]) == ("SAFP", "SAFP")
    assert row["transport"] == "tcp" and row["ip_version"] == 4


def test_tunnel_identity_is_part_of_the_key(tmp_path):
    def vx(vni, inner, outer_src="192.168.0.1"):  # type: ignore[no-untyped-def]
        return (
            eth()
            / IP(src=outer_src, dst="192.168.0.9")
            / UDP(sport=4000 + vni, dport=4789)
            / VXLAN(vni=vni)
            / inner
        )

    pkts = [vx(1, tcp("c", "S", 1)), vx(2, tcp("c", "S", 1)), vx(1, tcp("s", "SA", 9, 2)), tcp("c", "S", 1)]
    df = run(tmp_path, pkts)[0]
    assert len(df) == 3  # same inner 5-tuple: VNI 1, VNI 2 and untunneled are three flows
    by_vni = {int(v): r for v, r in zip(df["vni"], df.to_dict("records"), strict=True)}
    assert set(by_vni) == {1, 2, -1}  # -1: no VNI (the pipeline turns it into NA)
    assert by_vni[1]["packets_to_client"] == 1 and by_vni[2]["packets_to_client"] == 0
    assert by_vni[1]["outer_src_ip"] == "192.168.0.1" and by_vni[1]["outer_dst_ip"] == "192.168.0.9"
    assert pd.isna(by_vni[-1]["outer_src_ip"]) and pd.isna(by_vni[-1]["tunnel"])
    assert by_vni[1]["tunnel"] == "vxlan"
    assert len(set(df["uid"])) == 3


def test_geneve_gwlb_endpoints_are_part_of_the_key(tmp_path):
    def gw(endpoint, inner):  # type: ignore[no-untyped-def]
        opts = struct.pack(">HBB", 0x0108, 1, 2) + struct.pack(">Q", endpoint)
        opts += struct.pack(">HBB", 0x0108, 2, 2) + struct.pack(">Q", 0xA77AC4)
        opts += struct.pack(">HBB", 0x0108, 3, 1) + struct.pack(">I", 0xC00C1E)
        hdr = struct.pack(">BBHI", len(opts) // 4, 0, 0x0800, 0)
        return (
            eth()
            / IP(src="10.9.0.1", dst="10.9.0.2")
            / UDP(sport=1, dport=6081)
            / Raw(hdr + opts + bytes(inner[IP]))
        )

    pkts = [gw(0x1111, tcp("c", "S", 1)), gw(0x2222, tcp("c", "S", 1)), gw(0x1111, tcp("s", "SA", 5, 2))]
    df = run(tmp_path, pkts)[0]
    assert sorted(df["gwlb_endpoint_id"]) == ["0000000000001111", "0000000000002222"]
    assert set(df["gwlb_attachment_id"]) == {"0000000000a77ac4"}
    assert set(df["gwlb_flow_cookie"]) == {"00c00c1e"}
    assert df.set_index("gwlb_endpoint_id").loc["0000000000001111", "packets_to_client"] == 1
    assert set(df["tunnel"]) == {"geneve"} and set(df["vni"]) == {0}


# ------------------------------------------------------------------------------ orientation
@pytest.mark.parametrize(
    ("name", "packets", "client", "by"),
    [
        ("syn", [tcp("c", "S", 1), tcp("s", "SA", 9, 2)], (C, CP), "syn"),
        ("syn-ack first", [tcp("s", "SA", 9, 2), tcp("c", "A", 2, 10)], (C, CP), "synack"),
        (
            "server speaks first mid-stream",
            [tcp("s", "PA", 9, 2, b"x"), tcp("c", "A", 2, 10)],
            (C, CP),
            "port",
        ),
        (
            "ephemeral ports: first sender",
            [tcp("s", "PA", 9, 2, b"x", sport=50001, cport=50002)],
            (S, 50001),
            "first_packet",
        ),
        (
            "two service ports: the lower serves",
            [tcp("s", "PA", 9, 2, b"x", sport=8443, cport=443)],
            (S, 8443),
            "port",
        ),
        ("syn to a high port", [tcp("c", "S", 1, cport=443, sport=50000)], (C, 443), "syn"),
    ],
)
def test_client_server_orientation(tmp_path, name, packets, client, by):
    row = only(run(tmp_path, packets)[0])
    assert (row["client_ip"], row["client_port"], row["client_by"]) == (*client, by)


def test_udp_and_icmp_orientation(tmp_path):
    pkts = [
        udp("s"),
        udp("c"),
        eth() / IP(src=S, dst=C) / ICMP(type=0, id=1),
        eth() / IP(src=C, dst=S) / ICMP(type=8, id=1),
    ]
    df = run(tmp_path, pkts)[0].set_index("transport")
    assert (df.loc["udp", "client_ip"], df.loc["udp", "server_port"], df.loc["udp", "client_by"]) == (
        C,
        53,
        "port",
    )
    assert df.loc["udp", "packets_to_client"] == 1 and df.loc["udp", "packets_to_server"] == 1
    assert (df.loc["icmp", "client_ip"], df.loc["icmp", "client_by"]) == (C, "icmp")  # echo reply seen first
    assert df.loc["icmp", "server_port"] == -1  # no ports (NA in analyze()'s frame)


def test_other_protocols_are_flows(tmp_path):
    pkts = [
        eth() / IP(src=C, dst=S) / ESP(spi=7, seq=1, data=b"x" * 20),
        eth() / IP(src=S, dst=C) / ESP(spi=8, seq=1, data=b"y" * 20),
        eth() / IP(src=C, dst=S) / GRE(proto=0x88CC) / Raw(b"z" * 12),
        eth() / IP(src=C, dst=S, proto=89) / Raw(b"o" * 40),
    ]
    df = run(tmp_path, pkts)[0].set_index("transport")
    assert sorted(df.index) == ["esp", "gre", "ospf"]
    assert df.loc["esp", "packets_to_server"] + df.loc["esp", "packets_to_client"] == 2
    assert df.loc["ospf", "payload_bytes_to_server"] == 40


# ------------------------------------------------------------------------------- conn_state
def _hs_data():  # type: ignore[no-untyped-def]
    return [*HANDSHAKE, tcp("c", "PA", 1001, 5001, b"GET"), tcp("s", "A", 5001, 1004)]


# What Zeek's Conn::conn_state() says, worked through Zeek's TCP endpoint state machine
# (TCPSessionAdapter::UpdateStateMachine); the four marked (btest) are Zeek's own baseline
# scripts.base.protocols.conn.conn_state-RST-behavior: R, SR, SaR, SaFR.
CONN_STATES = [
    ("S0", [tcp("c", "S", 1000)]),
    ("S0 retransmitted SYN", [tcp("c", "S", 1000), tcp("c", "S", 1000)]),
    ("S1", [tcp("c", "S", 1000), tcp("s", "SA", 5000, 1001)]),
    ("S1 established", HANDSHAKE),
    ("SF", [*_hs_data(), tcp("c", "FA", 1004, 5001), tcp("s", "FA", 5001, 1005), tcp("c", "A", 1005, 5002)]),
    (
        "SF then RST",
        [*_hs_data(), tcp("c", "FA", 1004, 5001), tcp("s", "FA", 5001, 1005), tcp("c", "R", 1005)],
    ),
    ("REJ", [tcp("c", "S", 1000), tcp("s", "RA", 0, 1001)]),
    ("REJ both reset, no data", [*HANDSHAKE, tcp("c", "R", 1001), tcp("s", "R", 5001)]),
    ("RSTR both reset after data", [*_hs_data(), tcp("c", "R", 1004), tcp("s", "R", 5001)]),
    ("RSTO", [*_hs_data(), tcp("c", "RA", 1004, 5001)]),
    ("RSTO after client FIN", [*_hs_data(), tcp("c", "FA", 1004, 5001), tcp("c", "R", 1005)]),
    ("RSTR", [*_hs_data(), tcp("s", "RA", 5001, 1004)]),
    ("RSTR right after SYN-ACK", [tcp("c", "S", 1000), tcp("s", "SA", 5000, 1001), tcp("s", "R", 5001)]),
    ("S2", [*_hs_data(), tcp("c", "FA", 1004, 5001), tcp("s", "A", 5001, 1005)]),
    ("S3", [*_hs_data(), tcp("s", "FA", 5001, 1004)]),
    ("SH", [tcp("c", "S", 1000), tcp("c", "FA", 1001, 0)]),
    ("RSTOS0 (btest SR)", [tcp("c", "S", 1000), tcp("c", "R", 1001)]),
    ("RSTOS0 (btest SaR)", [tcp("c", "S", 1000), tcp("s", "A", 0, 1001), tcp("c", "R", 1001)]),
    (
        "OTH (btest SaFR)",
        [tcp("c", "S", 1000), tcp("s", "A", 0, 1001), tcp("c", "FA", 1001), tcp("c", "R", 1002)],
    ),
    ("OTH (btest R)", [tcp("c", "R", 1000)]),
    ("RSTRH", [tcp("s", "SA", 5000, 1001), tcp("s", "R", 5001)]),
    ("SHR", [tcp("s", "SA", 5000, 1001), tcp("s", "FA", 5001, 1001)]),
    ("S1 missed SYN", [tcp("s", "SA", 5000, 1001), tcp("c", "A", 1001, 5001)]),
    ("OTH SYN-ACK only", [tcp("s", "SA", 5000, 1001)]),
    ("OTH mid-stream", [tcp("c", "PA", 1001, 5001, b"a"), tcp("s", "PA", 5001, 1002, b"b")]),
    (
        "SF mid-stream",
        [
            tcp("c", "PA", 1001, 5001, b"a"),
            tcp("s", "PA", 5001, 1002, b"b"),
            tcp("c", "FA", 1002, 5002),
            tcp("s", "FA", 5002, 1003),
        ],
    ),
    (
        "SH mid-stream client FIN",
        [tcp("c", "PA", 1001, 5001, b"a"), tcp("s", "A", 5001, 1002), tcp("c", "FA", 1002, 5001)],
    ),
    ("SHR mid-stream server FIN", [tcp("c", "PA", 1001, 5001, b"a"), tcp("s", "FA", 5001, 1002)]),
    ("RSTRH mid-stream server RST", [tcp("c", "PA", 1001, 5001, b"a"), tcp("s", "R", 5001)]),
    (
        "OTH mid-stream client RST",
        [tcp("c", "PA", 1001, 5001, b"a"), tcp("s", "A", 5001, 1002), tcp("c", "R", 1002)],
    ),
]


@pytest.mark.parametrize(("expect", "packets"), CONN_STATES, ids=[c[0] for c in CONN_STATES])
def test_conn_state_matches_zeek(tmp_path, expect, packets):
    row = only(run(tmp_path, packets)[0])
    assert row["conn_state"] == expect.split()[0]
    assert (row["client_ip"], row["client_port"]) == (C, CP)


def test_conn_state_is_none_for_udp(tmp_path):
    assert only(run(tmp_path, [udp("c"), udp("s")])[0])["conn_state"] is None


# ------------------------------------------------------------------------ retransmissions
def test_retransmitted_bytes(tmp_path):
    pkts = [
        *HANDSHAKE,
        tcp("c", "PA", 1001, 5001, b"AAAA"),
        tcp("c", "PA", 1009, 5001, b"CCCC"),  # out of order: a hole at 4..8
        tcp("c", "PA", 1005, 5001, b"BBBB"),  # fills the hole: reordering, not a retransmission
        tcp("c", "PA", 1001, 5001, b"AAAA"),  # a true retransmission: 4 bytes
        tcp("c", "PA", 1011, 5001, b"ccDDDD"),  # overlaps 2 bytes already seen
        tcp("s", "PA", 5001, 1017, b"ok"),
        tcp("s", "PA", 5001, 1017, b"ok"),
    ]  # 2 more
    row = only(run(tmp_path, pkts)[0])
    assert row["retransmitted_bytes"] == 4 + 2 + 2
    assert row["payload_bytes_to_server"] == 22  # every byte on the wire, retransmissions included


def test_retransmissions_beyond_two_gib_of_sequence_space(tmp_path):
    """Offsets used to be taken relative to the ISN, wrapping after 2 GiB: every later segment then
    counted as retransmitted."""
    isn = 0xFFFF0000
    offs = [0, 1_500_000_000, 3_000_000_000, 4_500_000_000, 6_000_000_000]
    pkts = [tcp("c", "S", isn), tcp("s", "SA", 1, isn + 1)]
    pkts += [tcp("c", "PA", (isn + 1 + o) & 0xFFFFFFFF, 2, b"x" * 100) for o in offs]
    pkts.append(tcp("c", "PA", (isn + 1 + offs[-1]) & 0xFFFFFFFF, 2, b"x" * 100))  # retransmitted: 100
    row = only(run(tmp_path, pkts)[0])
    assert row["retransmitted_bytes"] == 100


# ------------------------------------------------------------------------------- timeouts
def test_idle_and_active_timeouts(tmp_path):
    pkts = [*HANDSHAKE, tcp("c", "PA", 1001, 5001, b"late")]
    times = [T0, T0 + 1, T0 + 2, T0 + 500]
    assert len(run(tmp_path, pkts, times)[0]) == 2  # default TCP idle timeout 300 s
    assert len(run(tmp_path, pkts, times, idle_timeout_tcp=1000)[0]) == 1
    df = run(tmp_path, pkts, times, idle_timeout_tcp=1000, active_timeout=100)[0]
    assert len(df) == 2
    assert df["packets_to_server"].tolist() == [2, 1]
    steady = [tcp("c", "PA", 1001 + i, 5001, b"x") for i in range(12)]
    df = run(tmp_path, steady, [T0 + 10 * i for i in range(12)], active_timeout=35)[0]
    assert df["packets_to_server"].tolist() == [4, 4, 4]  # never idle, cut every 35 s of activity
    u = [udp("c"), udp("c"), udp("c")]
    assert len(run(tmp_path, u, [T0, T0 + 10, T0 + 100])[0]) == 2  # UDP idle timeout 60 s
    assert len(run(tmp_path, u, [T0, T0 + 10, T0 + 100], idle_timeout_udp=120)[0]) == 1


def test_active_timeout_continuation_keeps_the_client(tmp_path):
    # both ports high (no service-port rule): after the split the server speaks first, which used to
    # make it the "client" of the continuation
    hs = [tcp("c", "S", 1000, cport=40001, sport=50001), tcp("s", "SA", 5000, 1001, cport=40001, sport=50001),
          tcp("c", "A", 1001, 5001, cport=40001, sport=50001)]
    rest = [tcp("s" if k % 2 == 0 else "c", "PA", 5001 + k if k % 2 == 0 else 1001 + k, 1, b"x",
                cport=40001, sport=50001) for k in range(8)]
    times = [T0, T0 + 0.1, T0 + 0.2] + [T0 + 10 * (k + 1) for k in range(8)]
    df = run(tmp_path, hs + rest, times, active_timeout=35)[0]
    assert len(df) >= 2
    assert df["client_port"].tolist() == [40001] * len(df)
    assert df["client_by"].tolist() == ["syn"] + ["continued"] * (len(df) - 1)
    # an idle split is a new conversation as far as we know: decided afresh
    df = run(tmp_path, hs + rest[:1], [*times[:3], T0 + 1000])[0]
    assert df["client_by"].tolist() == ["syn", "first_packet"] and df["client_port"].tolist() == [40001, 50001]


def test_timeouts_through_analyze(tmp_path):
    path = write_packets(tmp_path / "t.pcap", [udp("c"), udp("c")], [T0, T0 + 30], start=T0)
    assert len(analyzer.analyze([str(path)], dissect=False).flows) == 1
    assert len(analyzer.analyze([str(path)], dissect=False, idle_timeout_udp=20).flows) == 2


def test_port_reuse_after_close_is_a_new_flow(tmp_path):
    closed = [*HANDSHAKE, tcp("c", "FA", 1001, 5001), tcp("s", "FA", 5001, 1002), tcp("c", "A", 1002, 5002)]
    again = [tcp("c", "S", 9000), tcp("s", "SA", 7000, 9001), tcp("c", "A", 9001, 7001)]
    df = run(tmp_path, closed + again, [T0 + i * 0.1 for i in range(9)])[0]
    assert df["conn_state"].tolist() == ["SF", "S1"]
    assert df["packets_to_server"].tolist() == [4, 2]
    assert df["uid"].nunique() == 2
    # after a reset too; but a retransmitted SYN (same ISN) stays in its flow
    rst = [tcp("c", "S", 1000), tcp("s", "RA", 0, 1001), tcp("c", "S", 2000), tcp("s", "SA", 3000, 2001)]
    assert run(tmp_path, rst)[0]["conn_state"].tolist() == ["REJ", "S1"]
    same = [tcp("c", "S", 1000), tcp("s", "RA", 0, 1001), tcp("c", "S", 1000)]
    assert len(run(tmp_path, same)[0]) == 1


# ----------------------------------------------------------------------------------- uids
def test_uid_is_deterministic_and_distinct(tmp_path):
    pkts = [*HANDSHAKE, udp("c"), tcp("c", "S", 1, cport=40001)]
    a = run(tmp_path, pkts)[0]
    b = run(tmp_path, pkts)[0]
    assert a["uid"].tolist() == b["uid"].tolist()
    assert a["uid"].nunique() == 3 and all(u.startswith("C") for u in a["uid"])
    assert a["community_id"].tolist() == b["community_id"].tolist()
    later = run(tmp_path, pkts, [T0 + 5 + i for i in range(len(pkts))])[0]
    assert set(later["uid"]).isdisjoint(a["uid"])  # the start time is part of the uid


# ------------------------------------------------------------------------------ fragments
def test_ipv4_and_ipv6_fragments_join_their_flow(tmp_path):
    big = IP(src=C, dst=S, id=77) / UDP(sport=5000, dport=53) / Raw(b"x" * 3000)
    big6 = (
        IPv6(src="2001:db8::1", dst="2001:db8::2")
        / IPv6ExtHdrFragment(id=5)
        / UDP(sport=5000, dport=53)
        / Raw(b"y" * 3000)
    )
    pkts = [eth() / f for f in fragment(big, 1000)] + [eth() / f for f in fragment6(big6, 1280)]
    pkts.append(eth() / IP(src=S, dst=C) / UDP(sport=53, dport=5000) / Raw(b"r"))
    df = run(tmp_path, pkts)[0].set_index("ip_version")
    assert df.loc[4, "payload_bytes_to_server"] == 3000 and df.loc[6, "payload_bytes_to_server"] == 3000
    assert (df.loc[4, "client_port"], df.loc[4, "server_port"]) == (5000, 53)
    assert df.loc[4, "packets_to_server"] == len(fragment(big, 1000)) and df.loc[4, "packets_to_client"] == 1


def test_fragments_never_corrupt_a_flow(tmp_path):
    big = IP(src=C, dst=S, id=77) / UDP(sport=5000, dport=53) / Raw(b"x" * 3000)
    frags = fragment(big, 1000)
    # later fragments first (some stacks send them so), then an unrelated pair reusing the same IP id
    other = IP(src="10.7.7.7", dst=S, id=77) / UDP(sport=6000, dport=123) / Raw(b"z" * 2000)
    pkts = [eth() / f for f in frags[1:]] + [eth() / frags[0]] + [eth() / f for f in fragment(other, 1000)]
    df, payloads = run(tmp_path, pkts)
    assert df["packets_to_server"].sum() == len(pkts)  # every packet counted once
    assert len(df) == 2  # the later fragments found their first one in the batch: no port-0 flow
    main = df[(df["client_port"] == 5000)].iloc[0]
    assert main["server_port"] == 53 and main["client_ip"] == C
    assert (main["packets_to_server"], main["payload_bytes_to_server"]) == (len(frags), 3000)
    ntp = df[df["client_port"] == 6000].iloc[0]
    assert (ntp["server_port"], ntp["payload_bytes_to_server"]) == (123, 2000)
    dgs = payloads[main["uid"]].datagrams
    assert len(dgs) == 1 and set(dgs[0].payload) == {ord("x")}  # only its own bytes


# -------------------------------------------------------------------------- payload prefix
def _payload(tmp_path, packets, **options):  # type: ignore[no-untyped-def]
    df, payloads = run(tmp_path, packets, **options)
    row = only(df)
    return row, payloads.get(row["uid"])


def test_stream_reassembly_out_of_order_retransmitted_overlapping(tmp_path):
    pkts = [
        *HANDSHAKE,
        tcp("c", "PA", 1009, 5001, b"CCCC"),
        tcp("c", "PA", 1001, 5001, b"AAAA"),
        tcp("c", "PA", 1001, 5001, b"XXXX"),  # retransmission with other bytes: the first copy wins
        tcp("c", "PA", 1003, 5001, b"aaBBBB"),  # overlaps the prefix: only BBBB is new
        tcp("c", "PA", 1013, 5001, b"DD"),
        tcp("s", "PA", 5001, 1015, b"hi"),
    ]
    row, fp = _payload(tmp_path, pkts)
    assert fp.to_server.data == b"AAAABBBBCCCCDD"
    assert fp.to_server.start_known and fp.to_server.gap_at is None and not fp.to_server.budget_hit
    assert fp.to_client.data == b"hi"
    assert row["missing_bytes"] == 0


def test_stream_gap(tmp_path):
    pkts = [
        *HANDSHAKE,
        tcp("c", "PA", 1001, 5001, b"AAAA"),
        tcp("c", "PA", 1009, 5001, b"CCCC"),
        tcp("c", "PA", 1013, 5001, b"DDDD"),
    ]
    row, fp = _payload(tmp_path, pkts)
    assert fp.to_server.data == b"AAAA"
    assert (fp.to_server.gap_at, fp.to_server.gap_len) == (4, 4)
    assert row["missing_bytes"] == 4


def test_mid_stream_pickup(tmp_path):
    pkts = [
        tcp("c", "PA", 123456, 777, b"middle"),
        tcp("c", "PA", 123462, 777, b"-more"),
        tcp("s", "PA", 777, 123467, b"reply"),
    ]
    row, fp = _payload(tmp_path, pkts)
    assert not fp.to_server.start_known and not fp.to_client.start_known
    assert fp.to_server.data == b"middle-more" and fp.to_client.data == b"reply"
    assert row["conn_state"] == "OTH"


def test_budget_cuts_the_prefix_but_not_the_counting(tmp_path):
    chunk = [bytes([65 + i]) * 100 for i in range(10)]
    pkts = [*HANDSHAKE] + [tcp("c", "PA", 1001 + 100 * i, 5001, chunk[i]) for i in range(10)]
    pkts.append(tcp("s", "PA", 5001, 2001, b"z" * 50))
    row, fp = _payload(tmp_path, pkts, payload_budget=350)
    assert fp.to_server.data == b"".join(chunk)[:350]
    assert fp.to_server.budget_hit and fp.to_server.gap_at is None
    assert fp.to_client.data == b"z" * 50 and not fp.to_client.budget_hit  # per direction
    assert row["payload_bytes_to_server"] == 1000 and row["packets_to_server"] == 12
    assert row["missing_bytes"] == 0
    row0, fp0 = _payload(tmp_path, pkts, payload_budget=0)
    assert fp0 is None and row0["payload_bytes_to_server"] == 1000


def test_udp_datagrams_in_order_with_direction(tmp_path):
    pkts = [udp("c", b"q1"), udp("s", b"r1"), udp("c", b"q2")]
    _row, fp = _payload(tmp_path, pkts)
    assert [(d.to_server, d.payload) for d in fp.datagrams] == [(True, b"q1"), (False, b"r1"), (True, b"q2")]
    assert fp.datagrams[1].ts == pytest.approx(T0 + 0.01)


def test_udp_keeps_the_first_maxdg_datagrams_each_at_its_bytes(tmp_path):
    """A long UDP exchange keeps its first MAXDG datagrams (a fragmented DTLS handshake needs 20),
    each with its own bytes and direction although the two directions interleave unevenly."""
    sent = [("c" if i % 3 == 0 else "s", bytes([i]) * (1 + i % 7)) for i in range(FK.MAXDG + 8)]
    _row, fp = _payload(tmp_path, [udp(d, data) for d, data in sent])
    assert FK.MAXDG >= 20
    assert [(d.to_server, d.payload) for d in fp.datagrams] == [(d == "c", data) for d, data in sent[: FK.MAXDG]]


def test_payload_spread_over_many_batches_and_flows(tmp_path):
    """Several live flows interleaved across several read batches keep their own bytes."""
    pkts = []
    for k in range(20):
        pkts += [tcp("c", "S", 1000, cport=41000 + k), tcp("s", "SA", 5000, 1001, cport=41000 + k)]
    for i in range(20):
        for k in range(20):
            pkts.append(tcp("c", "PA", 1001 + 10 * i, 5001, bytes([k]) * 10, cport=41000 + k))
    path = write_packets(tmp_path / "many.pcap", pkts, start=T0, step=0.001)
    table = FlowTable(FlowOptions(payload_budget=128), capacity=8)  # forces growth mid-batch
    from analyzer.sources.readers import read_capture

    ended = []
    for b in read_capture(str(path), 4096):
        ended += table.update(decode(b))
    ended += table.flush()
    fps = [p for e in ended for p in e.payloads]
    assert len(fps) == 20
    for fp in fps:
        k = fp.client_port - 41000
        assert fp.to_server.data == bytes([k]) * 128 and fp.to_server.budget_hit


# ------------------------------------------------------------------ flow kernel in pure Python
_FLOW_HELPERS = (
    "_mix",
    "_hash",
    "_lookup",
    "rehash",
    "_end",
    "expire",
    "_alloc_page",
    "_write",
    "_absorb",
    "_zset",
    "_zeek_tcp",
    "_seen",
    "_new_record",
    "process",
    "free_records",
    "gather",
)


@st.composite
def segments(draw):  # type: ignore[no-untyped-def]
    """A short TCP/UDP conversation with arbitrary flags, sequence numbers and payload sizes."""
    out = []
    for _ in range(draw(st.integers(1, 12))):
        d = draw(st.sampled_from("cs"))
        if draw(st.integers(0, 4)) == 0:
            out.append(udp(d, b"u" * draw(st.integers(0, 40))))
            continue
        flags = draw(st.sampled_from(["S", "SA", "A", "PA", "FA", "R", "RA", "F", "SF", "SR", "FR", ""]))
        seq = draw(
            st.sampled_from([0, 1, 1000, 1004, 0x7FFFFFFF, 0xFFFFFFF0, draw(st.integers(0, 2**32 - 1))])
        )
        out.append(
            tcp(d, flags, seq, 0, b"p" * draw(st.integers(0, 300)), cport=draw(st.sampled_from([CP, 1])))
        )
    return out


@pytest.fixture
def pure_python_flow_kernel(monkeypatch):
    """The flow kernel as plain Python over numpy arrays: every index is bounds-checked."""
    for name in _FLOW_HELPERS:
        monkeypatch.setattr(FK, name, source_function(FK, name))


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(segments())
def test_flow_kernel_never_indexes_out_of_bounds(pure_python_flow_kernel, packets):
    frames = [bytes(p) for p in packets]
    batch = batch_of(frames, ts=[i * 1_000_000 for i in range(len(frames))])
    table = FlowTable(FlowOptions(payload_budget=512), capacity=4)
    with warnings.catch_warnings(), np.errstate(all="ignore"):  # uint64 hash arithmetic wraps on purpose
        warnings.simplefilter("ignore", RuntimeWarning)
        ended = table.update(decode(batch)) + table.flush()
    cols = pd.concat([pd.DataFrame(e.columns) for e in ended if len(e)])
    assert (cols["packets_to_server"] + cols["packets_to_client"]).sum() == len(frames)
    assert (cols["retransmitted_bytes"] >= 0).all()
    for fp in (p for e in ended for p in e.payloads):
        assert len(fp.to_server.data) <= 512 and len(fp.to_client.data) <= 512


def test_a_flood_of_distinct_flows_is_bounded_by_max_flows(tmp_path):
    """Hostile input: 5,000 SYNs from distinct ports. The table never holds more than max_flows;
    the least recently active flows are ended early, every flow is still reported, and the
    evictions are an anomalies row."""
    import struct

    import analyzer
    from analyzer.flows.table import FlowOptions, FlowTable

    def frame(sport: int) -> bytes:
        tcp = struct.pack("!HHIIBBHHH", sport, 443, 1000 + sport, 0, 0x50, 0x02, 65535, 0, 0)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
        return b"\x00" * 12 + b"\x08\x00" + ip + tcp

    records = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for k in range(5000):
        f = frame(10000 + k)
        records.append(struct.pack("<IIII", 1_700_000_000, k, len(f), len(f)) + f)
    path = tmp_path / "flood.pcap"
    path.write_bytes(b"".join(records))

    result = analyzer.analyze([str(path)], max_flows=1024, on_problem=lambda p: None)
    assert len(result.flows) == 5000
    assert (result.flows["packets_to_server"] == 1).all()
    evicted = result.anomalies[result.anomalies["kind"] == "flows_evicted"]
    assert len(evicted) == 1 and int(evicted["count"].iloc[0]) > 0

    from analyzer.decode import decode
    from analyzer.sources.readers import read_capture

    table = FlowTable(FlowOptions(max_flows=1024))
    for batch in read_capture(str(path)):
        table.update(decode(batch))
        assert table.R.shape[0] <= 1024


# --- TLS framing of the prefix (FlowOptions.tls_trim) ---------------------------------------------

def _rec(ctype: int, n: int, fill: bytes = b"x") -> bytes:
    return bytes([ctype, 3, 3]) + struct.pack("!H", n) + fill * n


def _tls_stream(app_records: int = 8) -> tuple[bytes, bytes]:
    hello = _rec(22, 200, b"h")
    server = _rec(22, 900, b"s") + _rec(20, 1, b"\x01") + _rec(22, 40, b"f")
    server += b"".join(_rec(23, 1000 + k, bytes([65 + k])) for k in range(app_records))
    client = hello + _rec(20, 1, b"\x01") + _rec(22, 40, b"F") + b"".join(
        _rec(23, 300 + k, bytes([97 + k])) for k in range(app_records))
    return client, server


def _segments(data: bytes, size: int) -> list[bytes]:
    return [data[k : k + size] for k in range(0, len(data), size)]


def _tls_flow(client: bytes, server: bytes, seg: int, syn: bool = True):  # type: ignore[no-untyped-def]
    pkts = [tcp("c", "S", 99), tcp("s", "SA", 499, 100), tcp("c", "A", 100, 500)] if syn else []
    cs, ss = 100, 500
    for k, part in enumerate(_segments(client, seg)):
        pkts.append(tcp("c", "PA", cs, ss, part))
        cs += len(part)
        if k < len(_segments(server, seg)):
            part_s = _segments(server, seg)[k]
            pkts.append(tcp("s", "PA", ss, cs, part_s))
            ss += len(part_s)
    for part_s in _segments(server, seg)[len(_segments(client, seg)):]:
        pkts.append(tcp("s", "PA", ss, cs, part_s))
        ss += len(part_s)
    return pkts


def _upto_third_appdata(stream: bytes) -> bytes:
    pos, after = 0, 0
    while after < 3:
        ctype, n = stream[pos], struct.unpack_from("!H", stream, pos + 3)[0]
        if after or ctype == 23:
            after += 1
        pos += 5 + n
    return stream[:pos]


@pytest.mark.parametrize("seg", [1460, 333, 4000])
def test_tls_prefix_ends_after_three_records_from_the_first_application_data(tmp_path, seg):
    client, server = _tls_stream()
    row, fp = _payload(tmp_path, _tls_flow(client, server, seg))
    # exactly at a record end, whatever the segmentation: the TLS dissector reads no further
    assert fp.to_server.data == _upto_third_appdata(client)
    assert fp.to_client.data == _upto_third_appdata(server)
    assert fp.to_server.gap_at is None and fp.to_client.gap_at is None and row["missing_bytes"] == 0
    assert fp.to_client.budget_hit  # the prefix was cut: said, not hidden
    # everything is still counted
    assert row["payload_bytes_to_server"] == len(client) and row["payload_bytes_to_client"] == len(server)

    _, fp2 = _payload(tmp_path, _tls_flow(client, server, seg), tls_trim=False)
    assert fp2.to_server.data == client and fp2.to_client.data == server


def test_tls_prefix_not_trimmed_for_other_protocols_or_mid_stream(tmp_path):
    http = b"GET / HTTP/1.1\r\n\r\n" + b"\x17\x03\x03\x00\x01x" * 50
    _, fp = _payload(tmp_path, _tls_flow(http, b"HTTP/1.1 200 OK\r\n\r\n" + b"y" * 5000, 700))
    assert len(fp.to_server.data) == len(http) and len(fp.to_client.data) == 5019
    client, server = _tls_stream()
    _, fp = _payload(tmp_path, _tls_flow(client, server, 1000, syn=False))  # picked up mid-stream
    assert fp.to_server.data == client and fp.to_client.data == server


def test_tls_trim_keeps_every_fact_of_the_bundled_captures():
    import analyzer

    a = analyzer.analyze([str(CAPTURES)])
    b = analyzer.analyze([str(CAPTURES)], tls_trim=False)
    assert len(a.tls) > 30
    for frame in ("flows", "tls", "certs", "cert_links", "anomalies"):
        pd.testing.assert_frame_equal(getattr(a, frame), getattr(b, frame))


@pytest.mark.corpus
@pytest.mark.slow
def test_tls_trim_keeps_every_fact_of_the_corpus():
    import analyzer

    corpus = Path(__file__).resolve().parents[3] / "shared" / "corpus"
    if not corpus.is_dir():
        pytest.skip(f"{corpus} not present (the shared corpus of real captures)")
    paths = sorted(p for p in corpus.rglob("*") if p.suffix in (".pcap", ".pcapng", ".cap"))
    sessions = 0
    for p in paths:
        try:
            a = analyzer.analyze([str(p)], on_problem=lambda _: None)
        except analyzer.IntransitError:
            continue
        b = analyzer.analyze([str(p)], tls_trim=False, on_problem=lambda _: None)
        sessions += len(a.tls)
        for frame in ("flows", "tls", "certs", "cert_links", "anomalies"):
            pd.testing.assert_frame_equal(getattr(a, frame), getattr(b, frame), obj=f"{p.name} {frame}")
    assert sessions > 400  # 455 TLS/QUIC/DTLS sessions in the corpus of 2026-11
