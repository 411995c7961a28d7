"""Per-packet decoding: L2, VLAN/MPLS, IPv4/IPv6 (+ options, extension headers, fragments), L4,
tunnels (VXLAN, GENEVE + AWS GWLB TLVs, GRE/ERSPAN, GTP-U, IP-in-IP, nesting), truncation, and
hostile bytes (never an exception, never a read outside the packet)."""

from __future__ import annotations

import shutil
import struct
import subprocess
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.contrib.erspan import ERSPAN_II, ERSPAN_III
from scapy.contrib.gtp import GTP_U_Header
from scapy.contrib.mpls import MPLS
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.dot11 import Dot11, Dot11QoS, RadioTap
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.ipsec import AH, ESP
from scapy.layers.l2 import GRE, LLC, SNAP, Dot1AD, Dot1Q
from scapy.layers.ppp import PPP, PPPoE
from scapy.layers.sctp import SCTP
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw
from support.fuzz_helpers import examples, fuzz_settings
from support.pcap_helpers import batch_of, decoded_rows, eth, pcap_bytes, table_run, write_packets

import analyzer.decode._kernel as DK
from analyzer._native import source_function
from analyzer.decode import DecodeOptions, decode
from analyzer.flows.table import FlowOptions, FlowTable

INNER = IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=443, flags="S", seq=7) / Raw(b"hello")
INNER6 = IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(sport=40000, dport=443, flags="S") / Raw(b"hello")
OUTER = IP(src="192.168.0.1", dst="192.168.0.2")


def one(frame, **kw):  # type: ignore[no-untyped-def]
    return decoded_rows([bytes(frame)], **kw).iloc[0]


def assert_inner(row, v6: bool = False) -> None:  # type: ignore[no-untyped-def]
    assert row["anomaly"] is None
    if v6:
        assert (row["src_ip"], row["dst_ip"]) == ("2001:db8::1", "2001:db8::2")
    else:
        assert (row["src_ip"], row["dst_ip"]) == ("10.0.0.1", "10.0.0.2")
    assert (row["proto"], row["src_port"], row["dst_port"]) == (6, 40000, 443)
    assert (row["payload_len"], row["payload_captured"]) == (5, 5)


def geneve(vni: int, proto: int, opts=()) -> bytes:  # type: ignore[no-untyped-def]
    ob = b"".join(struct.pack(">HBB", cls, typ, len(data) // 4) + data for cls, typ, data in opts)
    return struct.pack(">BBHI", len(ob) // 4, 0, proto, vni << 8) + ob


GWLB = [
    (0x0108, 1, struct.pack(">Q", 0x1122334455667788)),
    (0x0108, 2, struct.pack(">Q", 0xAABBCCDD00112233)),
    (0x0108, 3, struct.pack(">I", 0xDEADBEEF)),
    (0x0107, 9, b"\x00" * 4),
]


# ------------------------------------------------------------------------------- L2 and IP
@pytest.mark.parametrize(
    ("frame", "vlan"),
    [
        (eth() / Dot1Q(vlan=10) / INNER, 10),
        (eth() / Dot1AD(vlan=20) / Dot1Q(vlan=30) / INNER, 20),  # QinQ: the outer (service) tag
        (eth() / Dot1Q(vlan=5, type=0x8100) / Dot1Q(vlan=6) / INNER, 5),
        (eth(type=0x9100) / Dot1Q(vlan=40) / INNER, 40),
    ],
)
def test_vlan_tags(frame, vlan):
    row = one(frame)
    assert_inner(row)
    assert row["vlan"] == vlan


def test_mpls_label_stacks():
    row = one(eth() / MPLS(label=16, s=0) / MPLS(label=17, s=1) / INNER)
    assert_inner(row)
    assert row["tunnel"] == "mpls"  # used to be lost for IP packets
    row6 = one(eth() / MPLS(label=16, s=1) / INNER6)
    assert_inner(row6, v6=True)
    # Ethernet pseudowire with a control word
    pw = eth() / MPLS(label=99, s=1) / Raw(b"\x00\x00\x00\x00" + bytes(eth() / INNER))
    assert_inner(one(pw))


def test_mpls_under_a_tunnel_keeps_the_outer_addresses():
    frame = eth() / MPLS(label=16, s=1) / OUTER / UDP(sport=1, dport=4789) / VXLAN(vni=3) / eth() / INNER
    row = one(frame)
    assert_inner(row)
    assert row["tunnel"] == "mpls/vxlan"
    assert row["outer_src_ip"] == "192.168.0.1"  # MPLS used to stop the outer addresses being kept


def test_pppoe():
    assert_inner(one(eth() / PPPoE(sessionid=1) / PPP(proto=0x21) / INNER))


def test_ipv4_options():
    frame = (
        eth()
        / IP(src="10.0.0.1", dst="10.0.0.2", options=[IPOption_RR(routers=["1.1.1.1"] * 3)])
        / TCP(sport=40000, dport=443, flags="S")
        / Raw(b"hello")
    )
    row = one(frame)
    assert_inner(row)
    assert row["ip_len"] == len(frame) - 14


def test_ipv6_extension_headers():
    chain = (
        IPv6(src="2001:db8::1", dst="2001:db8::2")
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrRouting()
        / IPv6ExtHdrDestOpt()
        / AH(nh=6, payloadlen=4, icv=b"\0" * 12)
        / TCP(sport=40000, dport=443)
        / Raw(b"hello")
    )
    row = one(eth() / chain)
    assert_inner(row, v6=True)
    assert row["ip_len"] == len(chain)


def test_ipv6_header_chain_cut_is_an_anomaly_but_a_flow():
    frame = bytes(eth() / IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrHopByHop() / TCP())
    row = decoded_rows([frame[: 14 + 40 + 4]]).iloc[0]
    assert row["anomaly"] == "ipv6_extension_truncated"
    assert row["src_ip"] == "2001:db8::1"


def test_fragments_first_and_later():
    big = IP(src="10.0.0.1", dst="10.0.0.2", id=9) / UDP(sport=5000, dport=53) / Raw(b"x" * 3000)
    from scapy.layers.inet import fragment

    frags = fragment(big, fragsize=1000)
    rows = decoded_rows([bytes(eth() / f) for f in frags])
    assert rows["fragment"].tolist() == [1] + [2] * (len(frags) - 1)
    assert rows.loc[0, ["src_port", "dst_port"]].tolist() == [5000, 53]
    assert rows.loc[1, ["src_port", "dst_port", "proto"]].tolist() == [0, 0, 17]  # no L4 header inside
    assert rows["payload_len"].sum() == 3000

    big6 = (
        IPv6(src="2001:db8::1", dst="2001:db8::2")
        / IPv6ExtHdrFragment(id=77)
        / UDP(sport=5000, dport=53)
        / Raw(b"x" * 3000)
    )
    from scapy.layers.inet6 import fragment6

    rows6 = decoded_rows([bytes(eth() / f) for f in fragment6(big6, 1280)])
    assert rows6["fragment"].tolist() == [1, 2, 2]
    assert rows6.loc[0, ["src_port", "dst_port", "proto"]].tolist() == [5000, 53, 17]
    assert rows6["proto"].tolist() == [17, 17, 17]
    assert rows6["payload_len"].sum() == 3000


def test_transport_fields():
    rows = decoded_rows(
        [
            bytes(
                eth()
                / IP(src="10.0.0.1", dst="10.0.0.2")
                / TCP(sport=1, dport=2, flags="PA", seq=123456789, ack=42)
                / Raw(b"abc")
            ),
            bytes(eth() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=3, dport=4) / Raw(b"abcd")),
            bytes(eth() / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=3, code=1) / Raw(b"x" * 28)),
            bytes(eth() / IPv6(src="::1", dst="::2") / ICMPv6EchoRequest(data=b"ping")),
            bytes(eth() / IP(src="10.0.0.1", dst="10.0.0.2") / ESP(spi=0x1234, seq=1, data=b"x" * 16)),
            bytes(
                eth() / IP(src="10.0.0.1", dst="10.0.0.2") / GRE(proto=0x88CC) / Raw(b"x" * 10)
            ),  # not IP inside
            bytes(eth() / IP(src="10.0.0.1", dst="10.0.0.2", proto=89) / Raw(b"o" * 20)),
            bytes(eth() / IP(src="10.0.0.1", dst="10.0.0.2") / SCTP(sport=7, dport=8)),
        ]
    )
    assert rows["anomaly"].isna().all()
    assert rows["proto"].tolist() == [6, 17, 1, 58, 50, 47, 89, 132]
    assert rows.loc[0, ["src_port", "dst_port", "tcp_flags", "seq", "payload_len"]].tolist() == [
        1,
        2,
        0x18,
        123456789,
        3,
    ]
    assert rows.loc[1, ["src_port", "dst_port", "payload_len", "payload_captured"]].tolist() == [3, 4, 4, 4]
    assert rows.loc[2, ["src_port", "dst_port"]].tolist() == [3, 1]  # ICMP type and code
    assert rows.loc[3, ["src_port", "dst_port"]].tolist() == [128, 0]
    assert rows.loc[6, "payload_len"] == 20
    assert rows.loc[7, ["src_port", "dst_port"]].tolist() == [7, 8]


def test_esp_spi_kept():
    d = decode(batch_of([bytes(eth() / IP(src="10.0.0.1", dst="10.0.0.2") / ESP(spi=0x1234, seq=1))]))
    assert d.cols[0, DK.C_SPI] == 0x1234


# ------------------------------------------------------------------------------------ tunnels
TUNNELS = {
    "vxlan": (eth() / OUTER / UDP(sport=55555, dport=4789) / VXLAN(vni=77) / eth() / INNER, "vxlan", 77),
    "vxlan-inner-vlan": (
        eth() / OUTER / UDP(sport=1, dport=4789) / VXLAN(vni=78) / eth() / Dot1Q(vlan=9) / INNER,
        "vxlan",
        78,
    ),
    "geneve-eth": (
        eth() / OUTER / UDP(sport=1, dport=6081) / Raw(geneve(99, 0x6558) + bytes(eth() / INNER)),
        "geneve",
        99,
    ),
    "geneve-ipv4": (
        eth() / OUTER / UDP(sport=1, dport=6081) / Raw(geneve(98, 0x0800, GWLB) + bytes(INNER)),
        "geneve",
        98,
    ),
    "geneve-ipv6": (
        eth() / OUTER / UDP(sport=1, dport=6081) / Raw(geneve(0, 0x86DD, GWLB) + bytes(INNER6)),
        "geneve",
        0,
    ),
    # sent from the tunnel port (an endpoint's reply, or a sender that picks 4789 as its source)
    "vxlan-from-its-port": (  # RFC 7348 flags (scapy's default is the VXLAN-GPE form, 0x0C)
        eth() / OUTER / UDP(sport=4789, dport=52000) / VXLAN(flags=0x08, vni=79) / eth() / INNER, "vxlan", 79,
    ),
    "geneve-from-its-port": (
        eth() / OUTER / UDP(sport=6081, dport=41000) / Raw(geneve(97, 0x0800) + bytes(INNER)), "geneve", 97,
    ),
    "vxlan-group-policy": (  # Linux/OVS VXLAN-GBP: G bit, D bit and a group id in the reserved bits
        eth() / OUTER / UDP(sport=4789, dport=52000) / VXLAN(flags=0x88, gpflags=0x40, gpid=0x1234, vni=80)
        / eth() / INNER,
        "vxlan",
        80,
    ),
    "gre": (eth() / OUTER / GRE() / INNER, "gre", None),
    "gre-key-seq-csum": (
        eth() / OUTER / GRE(chksum_present=1, key_present=1, seqnum_present=1, key=5) / INNER,
        "gre",
        None,
    ),
    "gre-eth": (eth() / OUTER / GRE(proto=0x6558) / eth() / INNER, "gre", None),
    "erspan2": (
        eth() / OUTER / GRE(seqnum_present=1, proto=0x88BE) / ERSPAN_II(session_id=3) / eth() / INNER,
        "gre/erspan",
        None,
    ),
    "erspan3": (
        eth() / OUTER / GRE(proto=0x22EB) / ERSPAN_III(session_id=3) / eth() / INNER,
        "gre/erspan",
        None,
    ),
    "erspan3-platform": (
        eth() / OUTER / GRE(proto=0x22EB) / ERSPAN_III(session_id=3, o=1) / Raw(b"\0" * 8) / eth() / INNER,
        "gre/erspan",
        None,
    ),
    "gtp-u": (
        eth() / OUTER / UDP(sport=2152, dport=2152) / GTP_U_Header(teid=5, gtp_type=255) / INNER,
        "gtp",
        None,
    ),
    "gtp-u-ext": (
        eth()
        / OUTER
        / UDP(sport=2152, dport=2152)
        / GTP_U_Header(teid=5, gtp_type=255, E=1, next_ex=0x85)
        / Raw(b"\x01\x00\x05\x00")
        / INNER,
        "gtp",
        None,
    ),
    "ipip": (eth() / OUTER / INNER, "ipip", None),
    "6in4": (eth() / OUTER / INNER6, "ipip", None),
    "geneve/vxlan": (
        eth()
        / OUTER
        / UDP(sport=1, dport=6081)
        / Raw(
            geneve(5, 0x0800)
            + bytes(
                IP(src="172.16.0.1", dst="172.16.0.2")
                / UDP(sport=2, dport=4789)
                / VXLAN(vni=6)
                / eth()
                / INNER
            )
        ),
        "geneve/vxlan",
        6,
    ),
}


@pytest.mark.parametrize("name", list(TUNNELS))
def test_tunnels(name):
    frame, tunnel, vni = TUNNELS[name]
    row = one(frame)
    assert_inner(row, v6=name == "6in4" or name == "geneve-ipv6")
    assert row["tunnel"] == tunnel
    assert (None if pd.isna(row["vni"]) else int(row["vni"])) == vni
    assert row["outer_src_ip"] == "192.168.0.1"  # the outermost (vantage) header


def test_geneve_gwlb_tlvs():
    frame = eth() / OUTER / UDP(sport=1, dport=6081) / Raw(geneve(0, 0x0800, GWLB) + bytes(INNER))
    d = decode(batch_of([bytes(frame)]))
    assert d.cols[0, DK.C_TUN] & DK.T_GWLB
    assert int(d.ucols[0, DK.U_GWEP]) == 0x1122334455667788
    assert int(d.ucols[0, DK.U_GWATT]) == 0xAABBCCDD00112233
    assert int(d.ucols[0, DK.U_GWCK]) == 0xDEADBEEF and d.cols[0, DK.C_GWCK_SET] == 1


def test_vxlan_on_a_configured_port_only():
    frame = bytes(eth() / OUTER / UDP(sport=1, dport=8472) / VXLAN(vni=12) / eth() / INNER)
    plain = decoded_rows([frame]).iloc[0]
    assert (plain["src_ip"], plain["dst_port"], plain["tunnel"]) == ("192.168.0.1", 8472, None)
    row = decoded_rows([frame], vxlan_ports=(4789, 8472)).iloc[0]
    assert_inner(row)
    assert (row["tunnel"], row["vni"]) == ("vxlan", 12)
    off = decoded_rows(
        [bytes(eth() / OUTER / UDP(sport=1, dport=4789) / VXLAN(vni=1) / eth() / INNER)], vxlan_ports=(8472,)
    ).iloc[0]
    assert off["dst_port"] == 4789 and off["tunnel"] is None


def test_geneve_on_a_configured_port():
    frame = bytes(eth() / OUTER / UDP(sport=1, dport=6082) / Raw(geneve(4, 0x0800) + bytes(INNER)))
    row = decoded_rows([frame], geneve_ports=(6082,)).iloc[0]
    assert_inner(row)
    assert row["vni"] == 4


def dns_query(sport: int, dport: int, qid: int):  # type: ignore[no-untyped-def]
    return eth() / OUTER / UDP(sport=sport, dport=dport) / DNS(id=qid, rd=1, qd=DNSQR(qname="example.com"))


def dns_answer(sport: int, dport: int, qid: int):  # type: ignore[no-untyped-def]
    return (eth() / IP(src="192.168.0.2", dst="192.168.0.1") / UDP(sport=sport, dport=dport)
            / DNS(id=qid, qr=1, rd=0, qd=DNSQR(qname="example.com"), an=DNSRR(rrname="example.com", rdata="1.2.3.4")))


# Ordinary UDP on a tunnel port: its first bytes fail the tunnel header check. DNS ids 0x0800 and
# 0x0812 make the first byte 0x08, the VXLAN I flag, which was all a packet to port 4789 needed;
# the DNS flags (RD in a query, QR in an answer) sit where VXLAN has reserved bits.
NOT_TUNNELS = {
    "dns-query-from-4789": dns_query(4789, 53, 0x0800),
    "dns-answer-to-4789": dns_answer(53, 4789, 0x0812),
    "dns-query-from-6081": dns_query(6081, 53, 0x0012),
    "dns-answer-to-6081": dns_answer(53, 6081, 0x0012),
}
# Headers that fail the check for one reason each (tshark decodes these by port alone).
BAD_HEADERS = {
    "vxlan-reserved-bits": eth() / OUTER / UDP(sport=1, dport=4789) / VXLAN(vni=81, reserved2=5) / eth() / INNER,
    "vxlan-no-i-flag": eth() / OUTER / UDP(sport=1, dport=4789) / VXLAN(flags=0x00, vni=81) / eth() / INNER,
    "vxlan-gpe-nsh": eth() / OUTER / UDP(sport=1, dport=4789) / VXLAN(flags=0x0C, NextProtocol=4, vni=81) / INNER,
    "geneve-version-1": eth() / OUTER / UDP(sport=1, dport=6081) / Raw(b"\x40" + geneve(5, 0x0800)[1:] + bytes(INNER)),
    "geneve-nsh": eth() / OUTER / UDP(sport=1, dport=6081) / Raw(geneve(5, 0x894F) + bytes(INNER)),
    "geneve-options-past-the-datagram": (
        eth() / OUTER / UDP(sport=6081, dport=1) / Raw(b"\x3f" + geneve(5, 0x0800)[1:] + b"\0" * 12)
    ),
}


@pytest.mark.parametrize("name", [*NOT_TUNNELS, *BAD_HEADERS])
def test_udp_on_a_tunnel_port_that_is_not_a_tunnel_stays_udp(name):
    frame = {**NOT_TUNNELS, **BAD_HEADERS}[name]
    row = one(frame)
    udp = frame[UDP]
    assert row["anomaly"] is None and row["tunnel"] is None and pd.isna(row["vni"])
    assert (row["src_ip"], row["dst_ip"]) == (frame[IP].src, frame[IP].dst)
    assert (row["proto"], row["src_port"], row["dst_port"]) == (17, udp.sport, udp.dport)
    assert row["payload_len"] == len(udp.payload)


def test_tunnel_port_on_either_side_agrees_with_tshark(tmp_path):
    """tshark (4.0) decodes VXLAN/GENEVE by either UDP port, lower port first: the innermost
    addresses and ports it shows for each crafted frame are ours."""
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    names = ["vxlan", "vxlan-from-its-port", "geneve-ipv4", "geneve-from-its-port", "vxlan-group-policy"]
    frames = [TUNNELS[n][0] for n in names] + list(NOT_TUNNELS.values())
    path = write_packets(tmp_path / "ports.pcap", frames)
    fields = ["ip.src", "ip.dst", "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport", "vxlan.vni", "geneve.vni"]
    proc = subprocess.run(
        ["tshark", "-r", str(path), "-T", "fields", "-E", "occurrence=l", *(a for f in fields for a in ("-e", f))],
        capture_output=True, text=True, timeout=120, check=True,
    )
    theirs = []
    for line in proc.stdout.splitlines():
        src, dst, tsp, tdp, usp, udp_, vx, gen = line.split("\t")
        vni = int(vx or gen, 0) if (vx or gen) else None
        theirs.append((src, dst, int(tsp or usp), int(tdp or udp_), vni))
    rows = decoded_rows([bytes(f) for f in frames])
    ours = [(r.src_ip, r.dst_ip, r.src_port, r.dst_port, None if pd.isna(r.vni) else int(r.vni))
            for r in rows.itertuples()]
    assert ours == theirs


def test_vxlan_reply_from_port_4789_joins_its_inner_flow(tmp_path):
    """A VXLAN endpoint replies from port 4789 to the sender's source port: both directions of the
    inner conversation are one flow, and no outer UDP flow is left over."""
    inner_c = IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=40000, dport=53) / Raw(b"query")
    inner_s = IP(src="10.0.0.2", dst="10.0.0.1") / UDP(sport=53, dport=40000) / Raw(b"answer")
    back = IP(src="192.168.0.2", dst="192.168.0.1")
    pkts = [
        eth() / OUTER / UDP(sport=51000, dport=4789) / VXLAN(vni=7) / eth() / inner_c,
        eth() / back / UDP(sport=4789, dport=51000) / VXLAN(vni=7) / eth() / inner_s,
    ]
    df, _ = table_run(write_packets(tmp_path / "reply.pcap", pkts))
    assert len(df) == 1
    row = df.iloc[0]
    assert (row["client_ip"], row["client_port"], row["server_port"], row["vni"]) == ("10.0.0.1", 40000, 53, 7)
    assert (row["packets_to_server"], row["packets_to_client"], row["tunnel"]) == (1, 1, "vxlan")


# ------------------------------------------------------------------------ truncation / damage
def test_snaplen_cut_packets_count_by_original_length():
    full = bytes(eth() / INNER)
    rows = decoded_rows([full[:54], full[:40], full[:20]], wirelen=[len(full)] * 3)
    assert rows["truncated"].all()
    # headers complete, payload cut: lengths from the headers
    assert rows.loc[0, ["ip_len", "payload_len", "payload_captured", "dst_port"]].tolist() == [
        len(full) - 14,
        5,
        0,
        443,
    ]
    # cut inside the TCP header: ports still read, an anomaly noted, still a flow
    assert rows.loc[1, "anomaly"] == "l4_header_truncated" and rows.loc[1, "dst_port"] == 443
    assert rows.loc[1, "status"] == DK.ST_OK
    # cut inside the IP header: no addresses, not a flow
    assert rows.loc[2, "anomaly"] == "ip_header_truncated" and rows.loc[2, "ip_version"] == 0


def test_truncated_packets_are_counted_by_the_flow_table(tmp_path):
    full = bytes(eth() / INNER)
    path = tmp_path / "snap.pcap"
    path.write_bytes(
        pcap_bytes([(1, full[:54], len(full)), (2, full[:40], len(full)), (3, full, len(full))], snaplen=54)
    )
    df, _ = table_run(path)
    assert len(df) == 1
    row = df.iloc[0]
    assert row["packets_to_server"] == 3 and bool(row["truncated"])
    assert row["ip_bytes_to_server"] == 3 * (len(full) - 14)
    # the packet cut inside its TCP header has no known data offset: its payload is not guessed
    assert row["payload_bytes_to_server"] == 10


def test_bad_checksums_do_not_drop_packets():
    frame = (
        eth()
        / IP(src="10.0.0.1", dst="10.0.0.2", chksum=0xDEAD)
        / TCP(sport=40000, dport=443, chksum=1, flags="S", seq=7)
        / Raw(b"hello")
    )
    assert_inner(one(frame))


def test_tso_zero_ip_length():
    frame = bytearray(bytes(eth() / INNER))
    frame[16:18] = b"\0\0"
    row = decoded_rows([bytes(frame)]).iloc[0]
    assert_inner(row)
    assert row["ip_len"] == len(frame) - 14


# --------------------------------------------------------------------------- hostile packets
SEEDS = [(bytes(f), 1) for f, _t, _v in TUNNELS.values()] + [(bytes(f), 1) for f in NOT_TUNNELS.values()] + [
    (
        bytes(
            eth()
            / IPv6(src="::1", dst="::2")
            / IPv6ExtHdrHopByHop()
            / IPv6ExtHdrRouting()
            / IPv6ExtHdrDestOpt()
            / IPv6ExtHdrFragment(m=1)
            / AH(nh=17, payloadlen=4, icv=b"\0" * 12)
            / UDP()
        ),
        1,
    ),
    (bytes(eth() / IPv6(src="::1", dst="::2") / IPv6ExtHdrFragment(offset=3, nh=6) / Raw(b"x" * 16)), 1),
    (bytes(eth() / Dot1AD(vlan=1) / Dot1Q(vlan=2) / MPLS(s=0) / MPLS() / INNER), 1),
    (bytes(eth() / MPLS(s=1) / Raw(b"\0" * 4 + bytes(eth() / INNER))), 1),
    (bytes(eth() / PPPoE() / PPP(proto=0x57) / INNER6), 1),
    (
        bytes(
            eth()
            / OUTER
            / GRE(version=1, proto=0x880B, key_present=1, seqnum_present=1)
            / Raw(b"\xff\x03\x00\x21" + bytes(INNER))
        ),
        1,
    ),
    (bytes(eth() / OUTER / GRE(version=1, proto=0x880B, key_present=1) / Raw(b"\x21" + bytes(INNER))), 1),
    (bytes(eth() / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP() / Raw(b"x" * 8)), 1),
    (bytes(eth() / IP(src="10.0.0.1", dst="10.0.0.2") / ESP(spi=1)), 1),
    (bytes(INNER), 101),
    (bytes(INNER), 228),
    (bytes(INNER6), 229),
    (bytes(INNER6), 12),
    (b"\x00" * 2 + b"\x00\x01\x00\x06" + b"\x02" * 8 + b"\x81\x00" + b"\x00\x07\x08\x00" + bytes(INNER), 113),
    (b"\x08\x00" + b"\x00" * 18 + bytes(INNER), 276),
    (b"\x81\x00" + b"\x00" * 18 + b"\x00\x07\x86\xdd" + bytes(INNER6), 276),
    (b"\x02\0\0\0" + bytes(INNER), 0),
    (b"\0\0\0\x1e" + bytes(INNER6), 108),
    (b"\xff\x03\x00\x21" + bytes(INNER), 9),
    (b"\x00\x57" + bytes(INNER6), 50),
    (
        b"\x02\0\0\0"
        + struct.pack("<HH", 8, 10)
        + b"abc\0"
        + struct.pack("<HH", 4 + len(INNER), 9)
        + bytes(INNER),
        239,
    ),
]
# Wi-Fi: radiotap + 802.11 (127) and bare 802.11 (105) data frames with LLC/SNAP, one QoS and from the AP
_DOT11 = Dot11(type=2, subtype=0, FCfield=0x01, addr1="02:00:00:00:00:02", addr2="02:00:00:00:00:01",
               addr3="02:00:00:00:00:02")
_DOT11_QOS = Dot11(type=2, subtype=8, FCfield=0x02, addr1="02:00:00:00:00:01", addr2="02:00:00:00:00:02",
                   addr3="02:00:00:00:00:02") / Dot11QoS()
SEEDS += [
    (bytes(RadioTap() / _DOT11 / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(code=0x0800) / INNER), 127),
    (bytes(RadioTap(present="Flags", Flags="FCS") / _DOT11_QOS / LLC(dsap=0xAA, ssap=0xAA, ctrl=3)
           / SNAP(code=0x86DD) / INNER6) + b"\0\0\0\0", 127),
    (bytes(_DOT11 / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(code=0x0800) / INNER), 105),
]
LINKTYPES = [0, 1, 9, 12, 14, 50, 101, 105, 108, 113, 127, 228, 229, 239, 276, 4242]


@st.composite
def hostile(draw):  # type: ignore[no-untyped-def]
    """A valid frame with a few bytes changed and cut anywhere, or plain random bytes."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=120)), draw(st.sampled_from(LINKTYPES))
    data, lt = draw(st.sampled_from(SEEDS))
    data = bytearray(data)
    for _ in range(draw(st.integers(0, 4))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))]), lt


def test_seeds_decode_cleanly():
    for data, lt in SEEDS:
        row = decoded_rows([data], lt).iloc[0]
        assert row["anomaly"] is None and row["ip_version"] in (4, 6), (lt, data[:40].hex())


_TABLE = [FlowTable(FlowOptions(payload_budget=4096), capacity=256)]


@fuzz_settings(examples(300))
@given(st.lists(hostile(), min_size=1, max_size=8))
def test_hostile_frames_through_decode_and_flows_never_raise(packets):
    frames = [p[0] for p in packets]
    batch = batch_of(frames, [p[1] for p in packets], wirelen=[len(f) + 3 for f in frames])
    d = decode(batch, DecodeOptions(vxlan_ports=(4789, 8472)))
    c = d.cols
    assert set(np.unique(c[:, DK.C_STATUS])) <= {DK.ST_NOT_IP, DK.ST_OK, DK.ST_BAD}
    cap = c[:, DK.C_PLCAP]
    assert (cap >= 0).all() and (c[:, DK.C_PLLEN] >= 0).all()
    has = cap > 0
    assert (c[has, DK.C_PLOFF] >= batch.offset[has]).all()
    assert (c[has, DK.C_PLOFF] + cap[has] <= batch.offset[has] + batch.caplen[has]).all()
    table = _TABLE[0]  # one table for every example: state left by earlier hostile input must not matter
    ended = table.update(d) + table.flush()
    n_flows = sum(len(e) for e in ended)
    assert n_flows <= len(frames)


@pytest.fixture
def pure_python_helpers(monkeypatch):
    """Make decode_batch.py_func call the pure-Python helpers too, so numpy bounds-checks every read."""
    for name in ("_be16", "_be32", "_be64", "_ethernet", "_l2_tags", "_link", "_vxlan_header_ok",
                 "_geneve_header_ok"):
        monkeypatch.setattr(DK, name, source_function(DK, name))


def _py_decode(data: bytes, lt: int) -> np.ndarray:
    # each packet alone in a buffer of exactly its size: any read past its end raises IndexError
    ci = np.zeros((1, DK.NI), np.int64)
    cu = np.zeros((1, DK.NU), np.uint64)
    source_function(DK, "decode_batch")(
        np.frombuffer(data, np.uint8).copy(),
        np.zeros(1, np.int64),
        np.array([len(data)], np.int32),
        np.array([len(data) + 3], np.int32),
        np.array([lt], np.int16),
        np.array([4789, 8472], np.int64),
        np.array([6081], np.int64),
        ci,
        cu,
    )
    return ci


def test_pure_python_decoder_agrees_on_seeds(pure_python_helpers):
    compiled = decode(
        batch_of([d for d, _ in SEEDS], [lt for _, lt in SEEDS], wirelen=[len(d) + 3 for d, _ in SEEDS]),
        DecodeOptions(vxlan_ports=(4789, 8472)),
    ).cols
    starts = np.cumsum([0] + [len(d) for d, _ in SEEDS])[:-1]
    compiled[:, DK.C_PLOFF] -= np.where(compiled[:, DK.C_PLOFF] > 0, starts, 0)  # offsets within the packet
    for k, (data, lt) in enumerate(SEEDS):
        assert _py_decode(data, lt).tolist()[0] == compiled[k].tolist()


@fuzz_settings(examples(400))
@given(hostile())
def test_decoder_never_reads_outside_the_packet(pure_python_helpers, case):
    data, lt = case
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy integer overflow warnings too
        _py_decode(data, lt)


def test_a_mirror_cut_inner_packet_is_marked_truncated():
    """A VXLAN/GENEVE datagram captured whole whose inner packet is shorter than its IP header says
    (a Traffic Mirroring PacketLength or MTU cut): truncated, an inner_packet_truncated anomaly (a
    cut TCP header keeps its own anomaly). A snaplen cut of the capture itself, a whole inner
    packet, and a plain packet whose IP length exceeds its frame are not marked this way."""
    inner = bytes(eth() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=80, flags="PA")
                  / Raw(b"x" * 300))
    vx = [bytes(eth() / OUTER / UDP(sport=1, dport=4789) / VXLAN(flags=0x08, vni=5) / Raw(inner[:n]))
          for n in (120, 50, len(inner))]
    gen = bytes(eth() / OUTER / UDP(sport=1, dport=6081) / Raw(struct.pack("!BBHI", 0, 0, 0x6558, 9 << 8))
                / Raw(inner[:120]))
    plain = inner[:120]
    frames = [*vx, gen, plain, vx[0][:130]]  # the last: the capture's snaplen cut it (in the payload)
    rows = decoded_rows(frames, wirelen=[len(f) for f in frames[:-1]] + [len(vx[0])])
    assert rows["tunnel"].tolist()[:4] == ["vxlan", "vxlan", "vxlan", "geneve"]
    assert rows["truncated"].tolist() == [True, True, False, True, False, True]
    assert rows["anomaly"].fillna("-").tolist() == ["inner_packet_truncated", "l4_header_truncated", "-",
                                                    "inner_packet_truncated", "-", "-"]
