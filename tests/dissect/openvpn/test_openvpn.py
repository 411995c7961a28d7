"""OpenVPN dissector (analyzer/dissect/openvpn.py): the hard reset exchange over UDP and TCP, the
control channel wrapping (none, tls-auth, tls-crypt), data packets, hostile input, and the bundled
openvpn captures (tshark agreement: tests/captures/test_tunnels_captures.py)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from support.flow_helpers import tcp_flow
from support.tunnel_helpers import damage, udp_flow

import analyzer
from analyzer.dissect.openvpn import OpenVPNDissector, packets

CAPTURES = Path(__file__).resolve().parents[3] / "captures"
CSID, SSID = bytes.fromhex("1111111111111111"), bytes.fromhex("2222222222222222")


def client_reset(opcode: int = 7, hmac: int = 0) -> bytes:
    wrap = b"\x77" * hmac + b"\0\0\0\1" + b"\x60\0\0\0" if hmac else b""
    return bytes([opcode << 3]) + CSID + wrap + b"\x00" + b"\0\0\0\0"


def server_reset(hmac: int = 0, crypt: bool = False) -> bytes:
    if crypt:
        return bytes([8 << 3]) + SSID + b"\0\0\0\1" + b"\x60\0\0\0" + b"\x88" * 32 + b"\x99" * 17
    wrap = b"\x77" * hmac + b"\0\0\0\1" + b"\x60\0\0\0" if hmac else b""
    return bytes([8 << 3]) + SSID + wrap + b"\x01" + b"\0\0\0\0" + CSID + b"\0\0\0\0"


def control(sid: bytes) -> bytes:
    return bytes([4 << 3]) + sid + b"\x00" + b"\0\0\0\1" + b"\x16\x03\x01tls..."


def data_v2() -> bytes:
    return bytes([9 << 3]) + b"\0\0\1" + b"\0\0\0\1" + b"\xee" * 40


def framed(*pkts: bytes) -> bytes:
    return b"".join(len(p).to_bytes(2, "big") + p for p in pkts)


@pytest.mark.parametrize(("hmac", "crypt", "wrap", "hmac_bytes"),
                         [(0, False, "none", None), (20, False, "tls-auth", 20), (32, False, "tls-auth", 32),
                          (0, True, "tls-crypt", None)])
def test_udp_session_and_wrapping(hmac: int, crypt: bool, wrap: str, hmac_bytes: int | None):
    d = OpenVPNDissector()
    fp = udp_flow([(True, client_reset(hmac=hmac)), (False, server_reset(hmac, crypt)), (True, control(CSID)),
                   (False, control(SSID)), (True, data_v2()), (False, data_v2())], 1194)
    assert d.probe(fp)
    flow = d.dissect(fp).flow
    assert (flow["openvpn_control_wrap"], flow.get("openvpn_hmac_bytes")) == (wrap, hmac_bytes)
    assert (flow["openvpn_client_session_id"], flow["openvpn_server_session_id"]) == (CSID.hex(), SSID.hex())
    assert (flow["openvpn_control_packets"], flow["openvpn_data_packets"]) == (4, 2)
    assert (flow["app_protocol"], flow["encrypted"], flow["protection"]) == ("openvpn", True, "openvpn")


def test_tcp_framing_and_control_only():
    d = OpenVPNDissector()
    fp = tcp_flow(framed(client_reset(), control(CSID)), framed(server_reset(), control(SSID)), 443)
    assert d.probe(fp)  # any port
    flow = d.dissect(fp).flow
    assert flow["openvpn_control_wrap"] == "none" and flow["undecided_reason"] == "handshake_incomplete"
    assert "encrypted" not in flow
    assert packets(tcp_flow(b"\x00\x05ab", b"", 1), True) == [b"ab"]  # cut short: kept as far as it goes
    assert packets(tcp_flow(b"\xff\xff" + b"a" * 10, b"", 1), True) == []  # longer than any OpenVPN packet


def test_probe():
    d = OpenVPNDissector()
    assert d.probe(udp_flow([(True, client_reset())], 1194))  # unanswered: only on 1194
    assert not d.probe(udp_flow([(True, client_reset())], 5000))
    assert d.probe(udp_flow([(True, client_reset(opcode=10))], 1194))
    assert not d.probe(udp_flow([(True, client_reset()), (False, b"\x41" + b"\0" * 20)], 1194))  # key id 1
    assert not d.probe(udp_flow([(True, client_reset()[:10])], 1194))
    assert not d.probe(udp_flow([(True, b"8" + b"DNS-ish payload......")], 53))  # 0x38, but unanswered off 1194
    assert not d.probe(tcp_flow(b"GET / HTTP/1.1\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n", 1194))
    assert not d.probe(tcp_flow(b"\x16\x03\x01\x02\x00\x01", b"", 1194))


def test_damaged_sessions_never_raise():
    rng = random.Random("openvpn")
    d = OpenVPNDissector()
    base = [(True, client_reset(hmac=20)), (False, server_reset(20)), (True, control(CSID)), (True, data_v2())]
    for _ in range(1000):
        pkts = [(up, damage(rng, p)) for up, p in base]
        for fp in (udp_flow(pkts, 1194), tcp_flow(framed(*[p for up, p in pkts if up]),
                                                  damage(rng, framed(*[p for up, p in pkts if not up])), 1194)):
            d.probe(fp)
            assert d.dissect(fp).flow["app_protocol"] == "openvpn"


@pytest.mark.parametrize(("name", "transport", "wrap"),
                         [("openvpn_udp.pcap", "udp", "none"), ("openvpn_udp_tlsauth.pcap", "udp", "tls-auth"),
                          ("openvpn_tcp_tlscrypt.pcap", "tcp", "tls-crypt")])
def test_openvpn_captures(name: str, transport: str, wrap: str):
    r = analyzer.analyze([str(CAPTURES / name)])
    [flow] = r.flows.itertuples()
    assert (flow.transport, flow.app_protocol, flow.encrypted, flow.protection) == (transport, "openvpn", True,
                                                                                    "openvpn")
    assert flow.openvpn_control_wrap == wrap and flow.openvpn_reset_version == "V2"
    assert flow.openvpn_data_packets > 0 and r.anomalies.empty
