"""RDP dissector (analyzer/dissect/rdp.py): X.224 connection request/confirm per [MS-RDPBCGR]
2.2.1.1-2.2.1.2 (negotiation, cookie, failure), the hand-over to TLS, standard RDP security's Server
Security Data, hostile input, the probe, and the corpus capture (ndpi/rdp_over_tls.pcap)."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest
from support.flow_helpers import tcp_flow

import analyzer
from analyzer.dissect.rdp import RDPDissector

CORPUS = Path(__file__).resolve().parents[4] / "shared" / "corpus" / "pcaps"


def tpkt(code: int, variable: bytes) -> bytes:
    x224 = bytes([6 + len(variable), code, 0, 0, 0x12, 0x34, 0]) + variable
    return struct.pack(">BBH", 3, 0, 4 + len(x224)) + x224


def request(protocols: int | None, cookie: bytes = b"Cookie: mstshash=alice\r\n") -> bytes:
    neg = b"" if protocols is None else struct.pack("<BBHI", 1, 0, 8, protocols)
    return tpkt(0xE0, cookie + neg)


def confirm(kind: int | None, value: int = 0) -> bytes:
    return tpkt(0xD0, b"" if kind is None else struct.pack("<BBHI", kind, 0, 8, value))


def sc_security(method: int, level: int) -> bytes:
    data = struct.pack("<HHII", 0x0C02, 12, method, level)
    return b"\x03\x00\x00\x40\x02\xf0\x80\x7f\x66" + bytes(20) + data  # an MCS Connect Response around it


def test_tls_selected_hands_over():
    client, server = request(3), confirm(2, 2)
    d = RDPDissector()
    fp = tcp_flow(client + b"\x16\x03\x01\x00\x05hello", server + b"\x16\x03\x03", 13389)
    assert d.probe(fp)
    facts = d.dissect(fp)
    assert facts.handover is not None
    assert (facts.handover.to, facts.handover.to_server_offset, facts.handover.to_client_offset) == (
        "tls", len(client), len(server))
    assert facts.flow == {"app_protocol": "rdp", "rdp_requested_protocols": "ssl+hybrid",
                          "rdp_cookie": "mstshash=alice", "rdp_selected_protocol": "hybrid"}
    waiting = d.dissect(tcp_flow(client, server, 3389)).flow
    assert (waiting["protection"], waiting["undecided_reason"]) == ("tls", "upgrade_not_seen")


def test_standard_rdp_security():
    d = RDPDissector()
    rc4 = d.dissect(tcp_flow(request(0), confirm(2, 0) + sc_security(2, 2), 3389)).flow
    assert (rc4["encrypted"], rc4["protection"], rc4["rdp_selected_protocol"], rc4["rdp_encryption_method"],
            rc4["rdp_encryption_level"], rc4["rdp_requested_protocols"]) == (True, "rdp", "rdp", "128bit", 2, "rdp")
    clear = d.dissect(tcp_flow(request(None, b""), confirm(None) + sc_security(0, 0), 3389)).flow
    assert (clear["encrypted"], clear["protection"], clear["rdp_encryption_method"]) == (False, "none", "none")
    assert "rdp_cookie" not in clear
    unseen = d.dissect(tcp_flow(request(0), confirm(None), 3389)).flow  # an old server: no NEG_RSP
    assert (unseen["encrypted"], unseen["protection"]) == (True, "rdp") and "rdp_encryption_method" not in unseen


def test_negotiation_failure():
    flow = RDPDissector().dissect(tcp_flow(request(0), confirm(3, 5), 3389)).flow
    assert (flow["rdp_failure_code"], flow["protection"], flow["undecided_reason"]) == (5, "none",
                                                                                      "handshake_incomplete")
    assert "encrypted" not in flow


def test_probe():
    d = RDPDissector()
    assert d.probe(tcp_flow(b"", confirm(2, 1), 3389))
    for client in [b"\x03\x00\x00\x0b\x06\xd0" + bytes(5), b"\x16\x03\x01\x00\x05", b"GET / HTTP/1.1\r\n",
                   b"\x03\x00\x00\x20\x06\xe0" + bytes(26), b"\x03\x00\x00"]:
        assert not d.probe(tcp_flow(client, b"", 3389)), client


def test_hostile_input_never_raises():
    d = RDPDissector()
    started = time.perf_counter()
    for client in [b"\x03\x00\xff\xff\xfa\xe0" + bytes(200), request(2)[:-3], bytes(range(256)) * 10,
                   tpkt(0xE0, b"\r\n" * 120)]:
        for server in [b"", confirm(2, 0) + b"\x02\x0c" * 5000, confirm(2, 0xFFFFFFFF), b"\x03\x00\x00\x0b"]:
            facts = d.dissect(tcp_flow(client, server, 3389))
            assert facts.flow["app_protocol"] == "rdp"
    assert time.perf_counter() - started < 0.5


def test_corpus_capture():
    path = CORPUS / "ndpi" / "rdp_over_tls.pcap"
    if not path.is_file():
        pytest.skip(f"corpus capture {path} not present (../shared/corpus)")
    result = analyzer.analyze([str(path)], on_problem=lambda p: None)
    (row,) = result.flows[result.flows["server_port"] == 3389].itertuples()
    assert (row.app_protocol, row.rdp_selected_protocol, row.protection, row.encrypted, row.tls_version) == (
        "rdp", "hybrid", "tls", True, "TLS 1.2")
    assert len(result.tls) == 1  # the TLS session inside is dissected as before
