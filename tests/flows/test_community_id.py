"""Community ID v1 against the spec's baseline (corelight/community-id-spec, baseline/*.json), both
as a function and as computed by the flow table for real packets."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, IPv6
from scapy.layers.sctp import SCTP
from scapy.packet import Raw
from support.pcap_helpers import eth, table_run, write_packets

from analyzer.flows.community_id import community_id, community_id_packed, community_ids

LL_A, LL_B = "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea"

# (proto, saddr, daddr, sport, dport, seed 0, seed 1) from baseline_deflt.json / baseline_seed1.json.
# For ICMP the spec's "ports" are the type and the counterpart type (or the code for one-way types).
BASELINE = [
    (58, "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", 135, 136,
     "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=", "1:kHa1FhMYIT6Ym2Vm2AOtoOARDzY="),
    (58, "fe80::260:97ff:fe07:69ea", "fe80::200:86ff:fe05:80da", 136, 135,
     "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=", "1:kHa1FhMYIT6Ym2Vm2AOtoOARDzY="),
    (58, "fe80::260:97ff:fe07:69ea", "fe80::200:86ff:fe05:80da", 135, 136,
     "1:zavyT/cezQr1fmImYCwYnMXbgck=", "1:2hSqmsDZ2kdcY9kbiUzOEBic0iM="),
    (58, "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", 136, 135,
     "1:zavyT/cezQr1fmImYCwYnMXbgck=", "1:2hSqmsDZ2kdcY9kbiUzOEBic0iM="),
    (58, "3ffe:501:1800:2345::2", "3ffe:507:0:1:200:86ff:fe05:80da", 3, 0,
     "1:2ObVBgIn28oZvibYZhZMBgh7WdQ=", "1:lVEtCZpYu84Xqaa++3lXFyuu2n4="),
    (58, "3ffe:501:410:0:2c0:dfff:fe47:33e", "3ffe:507:0:1:200:86ff:fe05:80da", 1, 4,
     "1:hLZd0XGWojozrvxqE0dWB1iM6R0=", "1:W8MHwXpWzpoSTD+cGcaJr4u0ys8="),
    (58, "3ffe:507:0:1:200:86ff:fe05:80da", "3ffe:501:0:1001::2", 128, 129,
     "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg=", "1:GfZxjAkDk2MkegpBYHV6tadtFXQ="),
    (58, "3ffe:501:0:1001::2", "3ffe:507:0:1:200:86ff:fe05:80da", 129, 128,
     "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg=", "1:GfZxjAkDk2MkegpBYHV6tadtFXQ="),
    (58, "fe80::200:86ff:fe05:80da", "ff02::2", 133, 134,
     "1:hO+sN4H+MG5MY/8hIrXPqc4ZQz0=", "1:L7Ka0ZMYu+J3bL4ulW2PrqyXNo8="),
    (58, "fe80::260:97ff:fe07:69ea", "ff02::1", 134, 133,
     "1:pkvHqCL88/tg1k4cPigmZXUtL00=", "1:K/ee5UCqAMAQXDorP5nSa2CGLjc="),
    (1, "192.168.0.89", "192.168.0.1", 8, 0,
     "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=", "1:03g6IloqVBdcZlPyX8r0hgoE7kA="),
    (1, "192.168.0.1", "192.168.0.89", 0, 8,
     "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=", "1:03g6IloqVBdcZlPyX8r0hgoE7kA="),
    (1, "10.0.0.1", "10.0.0.2", 11, 0, "1:YHxtAirCG//0OzkcVAukqKQN9xM=", "1:XjUibYHaafLQ3pxQeiMI8g25q20="),
    (6, "2001:470:e5bf:dead:4957:2174:e82c:4887", "2607:f8b0:400c:c03::1a", 63943, 25,
     "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=", "1:eJYTW6AOzFLlSUoESovMjnu7rMw="),
    (6, "2607:f8b0:400c:c03::1a", "2001:470:e5bf:dead:4957:2174:e82c:4887", 25, 63943,
     "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=", "1:eJYTW6AOzFLlSUoESovMjnu7rMw="),
    (132, "192.168.170.8", "192.168.170.56", 7, 7,
     "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=", "1:5w3ZRjeKBzqT3zsaEECDGjUbYeg="),
    (132, "192.168.170.56", "192.168.170.8", 7, 7,
     "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=", "1:5w3ZRjeKBzqT3zsaEECDGjUbYeg="),
    (6, "128.232.110.120", "66.35.250.204", 34855, 80,
     "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "1:3V71V58M3Ksw/yuFALMcW0LAHvc="),
    (6, "66.35.250.204", "128.232.110.120", 80, 34855,
     "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "1:3V71V58M3Ksw/yuFALMcW0LAHvc="),
    (17, "192.168.1.52", "8.8.8.8", 54585, 53,
     "1:d/FP5EW3wiY1vCndhwleRRKHowQ=", "1:Q9We8WO3piVF8yEQBNJF4uiSVrI="),
    (17, "8.8.8.8", "192.168.1.52", 53, 54585,
     "1:d/FP5EW3wiY1vCndhwleRRKHowQ=", "1:Q9We8WO3piVF8yEQBNJF4uiSVrI="),
    (46, "10.1.12.1", "10.1.12.2", 0, 0, "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=", "1:rYir8gphR31noO9iDRQmF/BteEI="),
    (46, "10.1.12.2", "10.1.12.1", 0, 0, "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=", "1:rYir8gphR31noO9iDRQmF/BteEI="),
]  # fmt: skip


@pytest.mark.parametrize("row", BASELINE, ids=[f"{r[0]}-{r[1]}-{r[3]}" for r in BASELINE])
def test_spec_baseline(row):
    proto, s, d, sp, dp, seed0, seed1 = row
    assert community_id(s, d, proto, sp, dp) == seed0
    assert community_id(s, d, proto, sp, dp, seed=1) == seed1


def _cid(s: str, d: str, proto: int, a: int, b: int) -> str:
    """The hash with the tuple taken as given (no ordering, no counterpart lookup)."""
    data = b"\0\0" + ipaddress.ip_address(s).packed + ipaddress.ip_address(d).packed + bytes((proto, 0))
    data += struct.pack("!HH", a, b)
    return "1:" + base64.b64encode(hashlib.sha1(data).digest()).decode()


def test_icmp_counterparts_follow_zeek():
    lo, hi = "10.0.0.1", "10.0.0.2"
    # a router advertisement (9) is one-way: Zeek maps the solicitation 10 to 9, not 9 back to 10;
    # one-way tuples keep their direction and carry the code
    assert community_id(hi, lo, 1, 9, 0) == _cid(hi, lo, 1, 9, 0)
    assert community_id(hi, lo, 1, 10, 0) == _cid(lo, hi, 1, 9, 10)
    # ICMPv6 node information query / response (139 / 140) are a pair
    assert community_id("::2", "::1", 58, 139, 0) == _cid("::1", "::2", 58, 140, 139)
    assert community_id("::1", "::2", 58, 140, 0) == _cid("::1", "::2", 58, 140, 139)


def test_flow_table_community_ids_match_the_baseline(tmp_path):
    ip6a, ip6b = "2001:470:e5bf:dead:4957:2174:e82c:4887", "2607:f8b0:400c:c03::1a"
    pkts = [
        eth() / IP(src="128.232.110.120", dst="66.35.250.204") / TCP(sport=34855, dport=80, flags="S"),
        eth() / IP(src="66.35.250.204", dst="128.232.110.120") / TCP(sport=80, dport=34855, flags="SA"),
        eth() / IP(src="8.8.8.8", dst="192.168.1.52") / UDP(sport=53, dport=54585) / Raw(b"answer"),
        eth() / IPv6(src=ip6b, dst=ip6a) / TCP(sport=25, dport=63943, flags="SA"),
        eth() / IP(src="192.168.0.89", dst="192.168.0.1") / ICMP(type=8),
        eth() / IP(src="192.168.0.1", dst="192.168.0.89") / ICMP(type=0),
        eth() / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=11, code=0),
        eth() / IPv6(src=LL_A, dst=LL_B) / ICMPv6ND_NS(tgt="fe80::1"),
        eth() / IP(src="192.168.170.8", dst="192.168.170.56") / SCTP(sport=7, dport=7),
        eth() / IP(src="10.1.12.2", dst="10.1.12.1", proto=46) / Raw(b"rsvp"),
    ]
    df, _ = table_run(write_packets(tmp_path / "cid.pcap", pkts))
    got = set(df["community_id"])
    expect = {
        "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "1:d/FP5EW3wiY1vCndhwleRRKHowQ=", "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=",
        "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=", "1:YHxtAirCG//0OzkcVAukqKQN9xM=", "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=",
        "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=", "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=",
    }  # fmt: skip
    assert got == expect
    assert len(df) == len(expect)  # echo request and reply are one flow


def test_neighbor_advertisement_first_is_the_same_pair(tmp_path):
    pkt = eth() / IPv6(src=LL_B, dst=LL_A) / ICMPv6ND_NA(tgt="fe80::1")
    df, _ = table_run(write_packets(tmp_path / "na.pcap", [pkt]))
    assert df["community_id"].tolist() == ["1:dGHyGvjMfljg6Bppwm3bg0LO8TY="]


_ADDR4 = st.sampled_from([0, 1, 0x0A000001, 0xFFFFFFFF]) | st.integers(0, 2**32 - 1)
_ADDR6 = st.sampled_from([0, 1, (0xFFFF << 32) | 5, 1 << 127, 2**128 - 1]) | st.integers(0, 2**128 - 1)
_PORT = st.sampled_from([0, 80, 443, 65535]) | st.integers(0, 65535)


@st.composite
def _flow(draw):
    v = draw(st.sampled_from([4, 6]))
    addr = _ADDR4 if v == 4 else _ADDR6
    a = draw(addr)
    b = a if draw(st.booleans()) and draw(st.booleans()) else draw(addr)  # equal addresses: order by port
    return v, a, b, draw(st.sampled_from([6, 17, 132, 50, 47, 0, 255])), draw(_PORT), draw(_PORT), draw(
        st.integers(0, 1))


@settings(max_examples=30, deadline=None)
@given(st.lists(_flow(), min_size=1, max_size=60), st.sampled_from([0, 1, 65535]))
def test_vectorized_community_ids_equal_the_scalar_definition(flows, seed):
    def halves(v, x, junk):  # IPv4 lives in the low 32 bits; whatever is above must not matter
        return (junk * 0xFFFF, (junk * (0xFFFF << 32)) | x) if v == 4 else (x >> 64, x & (2**64 - 1))

    a = [halves(v, x, j) for v, x, _, _, _, _, j in flows]
    b = [halves(v, y, j) for v, _, y, _, _, _, j in flows]
    col = lambda i: np.array([f[i] for f in flows])  # noqa: E731
    got = community_ids(np.array([h for h, _ in a], np.uint64), np.array([lo for _, lo in a], np.uint64),
                        np.array([h for h, _ in b], np.uint64), np.array([lo for _, lo in b], np.uint64),
                        col(0), col(3), col(4), col(5), seed=seed)
    for g, (v, x, y, proto, pa, pb, _) in zip(got, flows, strict=True):
        n = 4 if v == 4 else 16
        assert g == community_id_packed(x.to_bytes(n, "big"), y.to_bytes(n, "big"), proto, pa, pb, seed=seed)
