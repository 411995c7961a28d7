"""NTP dissector (analyzer/dissect/ntp.py): headers per RFC 5905, NTS extension fields per RFC 8915,
symmetric-key MACs, the meaning of `encrypted` for NTP, hostile input and the probe. Real captures:
tests/captures/test_net_captures.py (chronyd) and tests/oracle/test_net_oracle.py."""

from __future__ import annotations

import struct
import time

from analyzer.dissect.base import Datagram, FlowPayload
from analyzer.dissect.ntp import NTPDissector, parse_ntp


def header(mode: int, stratum: int = 0, version: int = 4, poll: int = 6) -> bytes:
    return bytes([(version << 3) | mode, stratum, poll, 0xE9]) + bytes(44)


def field(kind: int, body: bytes) -> bytes:
    return struct.pack(">HH", kind, 4 + len(body)) + body


def udp(datagrams: list[tuple[bool, bytes]], port: int = 123) -> FlowPayload:
    return FlowPayload(uid="N1", transport="udp", client_ip="10.0.0.1", server_ip="10.0.0.2", client_port=40000,
                       server_port=port, ts_start=0.0,
                       datagrams=[Datagram(float(i), s, p) for i, (s, p) in enumerate(datagrams)])


def test_plain_client_server():
    d = NTPDissector()
    fp = udp([(True, header(3)), (False, header(4, stratum=2))])
    assert d.probe(fp)
    assert d.dissect(fp).flow == {"app_protocol": "ntp", "encrypted": False, "protection": "none", "ntp_version": 4,
                                  "ntp_mode": "client", "ntp_stratum": 2, "ntp_auth": "none"}


def test_nts_is_authenticated_not_encrypted():
    uid = field(0x0104, bytes(32))
    cookie = field(0x0204, bytes(100))
    auth = field(0x0404, struct.pack(">HH", 16, 16) + bytes(32))
    request = header(3) + uid + cookie + auth
    reply = header(4, stratum=1) + uid + auth
    flow = NTPDissector().dissect(udp([(True, request), (False, reply)])).flow
    assert (flow["protection"], flow["encrypted"], flow["ntp_auth"]) == ("nts", False, "nts")


def test_symmetric_key_mac():
    assert parse_ntp(header(3) + struct.pack(">I", 7) + bytes(20)) == (4, 3, 0, "symmetric_key")
    flow = NTPDissector().dissect(udp([(True, header(1) + bytes(24))])).flow
    assert (flow["ntp_auth"], flow["protection"], flow["ntp_mode"]) == ("symmetric_key", "none", "symmetric_active")


def test_control_messages_and_probe():
    d = NTPDissector()
    readvar = bytes([(2 << 3) | 6, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    assert d.probe(udp([(True, readvar)]))
    assert d.dissect(udp([(True, readvar)])).flow["ntp_mode"] == "control"
    assert not d.probe(udp([(True, readvar)], port=5000))  # too short to claim off port 123
    for payload in [bytes(48), b"\x16\xfe\xfd" + bytes(60), header(3, version=5), header(3, stratum=40),
                    b"GET / HTTP/1.1\r\n" * 4, header(3)[:47]]:
        assert not d.probe(udp([(True, payload)])), payload


def test_hostile_input_never_raises():
    d = NTPDissector()
    started = time.perf_counter()
    for payload in [header(3) + b"\x00\x01\x00\x00" * 1000, header(3) + b"\xff" * 3, bytes(range(256)) * 4,
                    header(4) + field(0x1234, bytes(8)) * 40]:
        facts = d.dissect(udp([(True, payload)] * 32))
        assert facts.flow["app_protocol"] == "ntp" and facts.flow["encrypted"] is False
    assert time.perf_counter() - started < 0.5
