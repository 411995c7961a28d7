"""DNS dissector (analyzer/dissect/dns.py): messages built per RFC 1035 4.1 (UDP and TCP framing,
compression pointers), mDNS/LLMNR naming, hostile input, and the probe's refusals. Real captures:
tests/captures/test_net_captures.py and tests/oracle/test_net_oracle.py."""

from __future__ import annotations

import struct
import time

from support.flow_helpers import tcp_flow

from analyzer.dissect.base import Datagram, FlowPayload
from analyzer.dissect.dns import DNSDissector, looks_like_dns, read_name


def name(dotted: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in dotted.split(".")) + b"\0"


def query(qname: str = "www.example.com", qtype: int = 1, ident: int = 0x1234, qclass: int = 1) -> bytes:
    return struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0) + name(qname) + struct.pack(">HH", qtype, qclass)


def response(q: bytes, rcode: int = 0, answers: int = 1) -> bytes:
    ident = q[:2]
    body = q[12:]
    rr = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([93, 184, 216, 34])
    return ident + struct.pack(">HHHHH", 0x8180 | rcode, 1, answers, 0, 0) + body + rr * answers


def udp_flow(datagrams: list[tuple[bool, bytes]], port: int = 53, client_port: int = 40000) -> FlowPayload:
    return FlowPayload(uid="D1", transport="udp", client_ip="10.0.0.1", server_ip="10.0.0.2",
                       client_port=client_port, server_port=port, ts_start=0.0,
                       datagrams=[Datagram(float(i), to_server, p) for i, (to_server, p) in enumerate(datagrams)])


def test_udp_query_and_response():
    d = DNSDissector()
    q = query("www.example.com", 28)
    fp = udp_flow([(True, q), (False, response(q, answers=2))])
    assert d.probe(fp)
    facts = d.dissect(fp)
    assert facts.flow == {"app_protocol": "dns", "encrypted": False, "protection": "none",
                          "dns_query": "www.example.com", "dns_qtype": 28, "dns_qtype_name": "AAAA",
                          "dns_rcode": 0, "dns_rcode_name": "NOERROR", "dns_answers": 2,
                          "dns_queries": 1, "dns_responses": 1}
    assert not facts.rows


def test_nxdomain_and_unnamed_type():
    q = query("nope.invalid", 4242)
    flow = DNSDissector().dissect(udp_flow([(True, q), (False, response(q, rcode=3, answers=0))])).flow
    assert (flow["dns_rcode_name"], flow["dns_answers"], flow["dns_qtype_name"]) == ("NXDOMAIN", 0, "TYPE4242")


def test_tcp_length_prefixed_on_any_port():
    q = query("example.org", 252)  # AXFR
    r = response(q)
    fp = tcp_flow(struct.pack(">H", len(q)) + q, struct.pack(">H", len(r)) + r, 5300)
    d = DNSDissector()
    assert d.probe(fp)
    flow = d.dissect(fp).flow
    assert (flow["app_protocol"], flow["dns_query"], flow["dns_qtype_name"], flow["dns_responses"]) == (
        "dns", "example.org", "AXFR", 1)


def test_mdns_and_llmnr_are_named_by_port():
    q = query("printer.local", 12, ident=0, qclass=0x8001)  # QU bit
    assert DNSDissector().dissect(udp_flow([(True, q)], port=5353, client_port=5353)).flow["app_protocol"] == "mdns"
    assert DNSDissector().dissect(udp_flow([(True, query("host"))], port=5355)).flow["app_protocol"] == "llmnr"
    # an mDNS announcement: a response with answers and no question
    rr = name("printer.local") + struct.pack(">HHIH", 1, 0x8001, 120, 4) + bytes(4)
    announce = struct.pack(">HHHHHH", 0, 0x8400, 0, 1, 0, 0) + rr
    assert DNSDissector().probe(udp_flow([(True, announce)], port=5353, client_port=5353))


def test_compression_pointers_only_backwards():
    msg = b"\0" * 12 + name("a.b") + b"\x01c\xc0\x0c"
    assert read_name(msg, 17) == (b"c.a.b", 21)
    assert read_name(b"\0" * 12 + b"\xc0\x0c", 12) is None  # points at itself
    assert read_name(b"\0" * 12 + b"\x01a\xc0\x0e", 12) is None  # forward / loop


def test_probe_refuses_other_payloads():
    d = DNSDissector()
    for payload in [b"\x16\xfe\xfd" + bytes(40), b"GET / HTTP/1.1\r\n\r\n", bytes(12), b"\xff" * 40,
                    b"\x17\x00\x03\x2a" + bytes(44), query("x")[:-3]]:
        assert not d.probe(udp_flow([(True, payload)])), payload
    # NetBIOS name service shares the format: not DNS
    assert not d.probe(udp_flow([(True, query("FHEPFCELEHFCEPFFFACACACACACACABN"))], port=137, client_port=137))
    # TCP: the length prefix must frame a DNS message
    assert not d.probe(tcp_flow(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40), b"", 53))


def test_hostile_input_never_raises():
    d = DNSDissector()
    cases = [bytes(range(256)) * 4, b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"\x3f" * 300,
             b"\x00\x01\x81\x80\xff\xff\xff\xff\xff\xff\xff\xff", b"\x00" * 11]
    for payload in cases:
        started = time.perf_counter()
        facts = d.dissect(udp_flow([(True, payload), (False, payload)]))
        assert time.perf_counter() - started < 0.05
        assert facts.flow["app_protocol"] == "dns"
    big = b"".join(struct.pack(">H", 12) + bytes(12) for _ in range(10_000))
    started = time.perf_counter()
    flow = d.dissect(tcp_flow(big, big, 53)).flow
    assert time.perf_counter() - started < 0.2 and flow["dns_queries"] == 128  # 64 per direction, bounded
    assert looks_like_dns(query("a" * 63 + "." + "b" * 63))
    assert not looks_like_dns(query(".".join(["a" * 63] * 5)))  # over 255 bytes
