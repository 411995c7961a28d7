"""Wi-Fi captures (radiotap + 802.11, link types 127 and 105): TLS in unprotected data frames is
decoded (issue 16 item 9). tshark is the oracle: the same SNI, the same flow."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from scapy.layers.dot11 import Dot11, Dot11QoS, RadioTap
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import LLC, SNAP
from scapy.packet import Raw
from scapy.utils import wrpcap
from support.tls_helpers import client_hello_body, handshake, record, sni_ext

import analyzer

HELLO = record(22, handshake(1, client_hello_body(extensions=[sni_ext("wifi.example.org")])), 0x0301)


def _frames(qos: bool, fcs: bool, protected: bool = False) -> list:
    seg = IP(src="192.168.1.20", dst="192.0.2.7") / TCP(sport=51000, dport=443, flags="PA", seq=1000)
    dot11 = Dot11(type=2, subtype=8 if qos else 0, FCfield=0x01 | (0x40 if protected else 0),  # to-DS (+ protected)
                  addr1="02:00:00:00:00:01", addr2="02:00:00:00:00:02", addr3="02:00:00:00:00:03")
    radiotap = RadioTap(present="Flags+Rate", Flags="FCS" if fcs else 0, Rate=54)
    pkt = radiotap / dot11 / (Dot11QoS() if qos else b"") / LLC() / SNAP() / seg / Raw(HELLO)
    raw = bytes(pkt) + (b"\xde\xad\xbe\xef" if fcs else b"")
    return [RadioTap(raw)]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is the oracle")
@pytest.mark.parametrize(("qos", "fcs"), [(False, False), (True, False), (True, True)])
def test_tls_over_radiotap_matches_tshark(tmp_path, qos, fcs):
    path = tmp_path / "wifi.pcap"
    wrpcap(str(path), _frames(qos, fcs), linktype=127)
    oracle = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "tls.handshake.extensions_server_name",
                             "-e", "tcp.srcport", "-e", "tcp.dstport"], capture_output=True, text=True, timeout=60)
    assert oracle.stdout.split() == ["wifi.example.org", "51000", "443"]
    problems: list = []
    result = analyzer.analyze(str(path), on_problem=problems.append)
    flows = result.flows
    assert not problems
    assert flows[["client_port", "server_port"]].values.tolist() == [[51000, 443]]
    assert flows["tls_server_name"].tolist() == ["wifi.example.org"]


def test_protected_wifi_frames_are_not_ip_and_not_damage(tmp_path):
    path = tmp_path / "wpa.pcap"
    wrpcap(str(path), _frames(True, False, protected=True), linktype=127)
    result = analyzer.analyze(str(path))
    assert result.flows.empty
    assert "unsupported_linktype" not in set(result.anomalies["kind"])
