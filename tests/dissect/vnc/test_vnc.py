"""VNC dissector (analyzer/dissect/vnc.py): RFB handshakes per RFC 6143 (3.3, 3.8; None, VNC auth),
TLS and VeNCrypt (TLS subtypes hand over to TLS; Plain is a cleartext credential), hostile input and
the probe. No VNC capture is in the corpus or bundled (see tests/oracle/ORACLE_NET_NOTES.md)."""

from __future__ import annotations

import struct
import time

from support.flow_helpers import tcp_flow

from analyzer.dissect.base import DissectContext
from analyzer.dissect.vnc import VNCDissector

V38, V33 = b"RFB 003.008\n", b"RFB 003.003\n"


def dissector() -> VNCDissector:
    return VNCDissector().for_run(DissectContext(frames=frozenset({"credentials"})))


def test_vnc_auth_is_challenge_response():
    server = V38 + b"\x02\x02\x01" + bytes(16) + b"\x00\x00\x00\x00" + b"\x04\x00\x03\x00"
    client = V38 + b"\x02" + bytes(range(16)) + b"\x01"
    d = dissector()
    fp = tcp_flow(client, server, 5901)
    assert d.probe(fp)
    facts = d.dissect(fp)
    assert facts.flow == {"app_protocol": "vnc", "vnc_server_version": "3.8", "vnc_client_version": "3.8",
                          "vnc_security_types": "2,1", "vnc_security_type": 2, "encrypted": False,
                          "protection": "none", "vnc_security_result": 0}
    (row,) = facts.rows["credentials"]
    assert (row["protocol"], row["mechanism"], row["secret_in_clear"], row["secret_fingerprint"], row["accepted"]) == (
        "vnc", "vnc_auth", False, None, True)
    failed = d.dissect(tcp_flow(client, V38 + b"\x01\x02" + bytes(16) + b"\x00\x00\x00\x01", 5900))
    assert failed.rows["credentials"][0]["accepted"] is False


def test_version_33_and_none():
    flow = dissector().dissect(tcp_flow(V33 + b"\x01", V33 + b"\x00\x00\x00\x01", 5900)).flow
    assert (flow["vnc_security_type"], flow["encrypted"], flow["vnc_server_version"]) == (1, False, "3.3")
    none38 = dissector().dissect(tcp_flow(V38 + b"\x01\x01", V38 + b"\x01\x01\x00\x00\x00\x00", 5900)).flow
    assert (none38["vnc_security_type"], none38["vnc_security_result"], none38["protection"]) == (1, 0, "none")
    refused = dissector().dissect(tcp_flow(V38, V38 + b"\x00\x00\x00\x00\x05nope!", 5900)).flow
    assert refused["undecided_reason"] == "handshake_incomplete" and refused["vnc_security_types"] == ""


def test_tls_and_vencrypt_hand_over():
    hello = b"\x16\x03\x01\x00\x05hello"
    server = V38 + b"\x01\x12"
    client = V38 + b"\x12"
    facts = dissector().dissect(tcp_flow(client + hello, server + b"\x16\x03\x03", 5900))
    assert facts.handover is not None
    assert (facts.handover.to_server_offset, facts.handover.to_client_offset) == (len(client), len(server))
    # VeNCrypt 0.2, subtypes X509Vnc and TLSVnc, the client picks TLSVnc (258)
    server = V38 + b"\x01\x13" + b"\x00\x02" + b"\x00" + b"\x02" + struct.pack(">II", 261, 258) + b"\x01"
    client = V38 + b"\x13" + b"\x00\x02" + struct.pack(">I", 258)
    facts = dissector().dissect(tcp_flow(client + hello, server + b"\x16\x03\x03", 5900))
    assert facts.handover is not None
    assert (facts.handover.to_server_offset, facts.handover.to_client_offset) == (len(client), len(server))
    assert facts.flow["vnc_vencrypt_subtype"] == 258 and facts.flow["vnc_security_type"] == 19
    waiting = dissector().dissect(tcp_flow(client, server, 5900)).flow
    assert (waiting["protection"], waiting["undecided_reason"]) == ("tls", "upgrade_not_seen")


def test_vencrypt_plain_is_a_cleartext_credential():
    server = V38 + b"\x01\x13" + b"\x00\x02" + b"\x00" + b"\x01" + struct.pack(">I", 256) + b"\x01"
    client = V38 + b"\x13" + b"\x00\x02" + struct.pack(">III", 256, 5, 10) + b"alice" + b"s3cret-vnc"
    facts = dissector().dissect(tcp_flow(client, server, 5900))
    assert (facts.flow["encrypted"], facts.flow["protection"]) == (False, "none")
    (row,) = facts.rows["credentials"]
    assert (row["mechanism"], row["username"], row["secret_in_clear"], row["secret_length"]) == ("plain", "alice",
                                                                                                  True, 10)
    assert "s3cret-vnc" not in repr(facts)


def test_other_types_undecided_and_probe():
    d = dissector()
    flow = d.dissect(tcp_flow(V38 + b"\x1e", V38 + b"\x01\x1e", 5900)).flow  # Apple DH
    assert (flow["vnc_security_type"], flow["undecided_reason"]) == (30, "undecided") and "encrypted" not in flow
    assert d.probe(tcp_flow(V38, b"", 5900))
    for server in [b"RFB 3.8\n", b"RFB 003.00", b"SSH-2.0-x\r\n", b"HTTP/1.1 200 OK\r\n"]:
        assert not d.probe(tcp_flow(b"", server, 5900)), server


def test_hostile_input_never_raises():
    d = dissector()
    started = time.perf_counter()
    for client in [V38 + b"\x13\x00\x02" + b"\xff" * 20, V38, V38 + bytes(range(256)) * 10, V33]:
        for server in [V38 + b"\xff" + b"\x13" * 255, V38 + b"\x01\x13\x00\x02\x00\xff", V33 + b"\xff\xff\xff\xff",
                       V38 + b"\x01\x02" + bytes(10)]:
            facts = d.dissect(tcp_flow(client, server, 5900))
            assert facts.flow["app_protocol"] == "vnc"
    assert time.perf_counter() - started < 0.5
