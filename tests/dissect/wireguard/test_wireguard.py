"""WireGuard dissector (analyzer/dissect/wireguard.py): message shapes of the whitepaper (5.4),
hostile input, and the bundled wireguard-go capture (tshark agreement:
tests/captures/test_tunnels_captures.py)."""

from __future__ import annotations

import random
import struct
from pathlib import Path

from support.tunnel_helpers import damage, udp_flow

import analyzer
from analyzer.dissect.wireguard import WireGuardDissector, message_type

CAPTURES = Path(__file__).resolve().parents[3] / "captures"


def initiation(sender: int = 0x11223344) -> bytes:
    return b"\x01\0\0\0" + struct.pack("<I", sender) + b"\xaa" * 140


def response(sender: int = 0x55667788, receiver: int = 0x11223344) -> bytes:
    return b"\x02\0\0\0" + struct.pack("<II", sender, receiver) + b"\xbb" * 80


def data(n: int = 1) -> bytes:
    return b"\x04\0\0\0" + b"\x01" * 12 + b"\xcc" * (16 * n + 16)  # n padded blocks and the tag


def test_message_shapes():
    assert message_type(initiation()) == 1 and message_type(response()) == 2
    assert message_type(b"\x03\0\0\0" + b"\0" * 60) == 3
    assert message_type(data(0)) == 4 and message_type(data(3)) == 4  # keepalive: 32 bytes
    assert message_type(initiation() + b"x") is None  # fixed sizes
    assert message_type(data(1) + b"\0") is None  # padded to 16
    assert message_type(b"\x04\0\0\x01" + b"\0" * 28) is None  # reserved bytes are zero
    assert message_type(b"\x05\0\0\0" + b"\0" * 28) is None
    assert message_type(b"\x04\0\0\0") is None


def test_handshake_and_data():
    d = WireGuardDissector()
    fp = udp_flow([(True, initiation()), (False, response()), (True, data(2)), (False, data(0))], 51820)
    assert d.probe(fp)
    facts = d.dissect(fp)
    assert facts.flow == {"app_protocol": "wireguard", "protection": "wireguard", "encrypted": True,
                          "wireguard_initiator_index": "11223344", "wireguard_responder_index": "55667788",
                          "wireguard_initiations": 1, "wireguard_responses": 1, "wireguard_cookie_replies": 0,
                          "wireguard_data_messages": 2}


def test_unanswered_initiations_are_undecided():
    flow = WireGuardDissector().dissect(udp_flow([(True, initiation()), (True, initiation())], 3333)).flow
    assert flow["undecided_reason"] == "handshake_incomplete" and "encrypted" not in flow
    assert flow["protection"] == "wireguard"


def test_probe_needs_every_first_datagram_shaped():
    d = WireGuardDissector()
    assert d.probe(udp_flow([(True, data(1))], 9999))  # mid-session, any port
    assert not d.probe(udp_flow([(True, initiation()), (False, b"\x02hello")], 51820))
    assert not d.probe(udp_flow([(True, b"\x01\0\0\0" + b"\0" * 100)], 51820))  # DNS-sized, wrong length
    assert not d.probe(udp_flow([], 51820))


def test_damaged_datagrams_never_raise():
    rng = random.Random("wireguard")
    d = WireGuardDissector()
    base = [(True, initiation()), (False, response()), (True, data(2)), (False, data(1))]
    for _ in range(1000):
        fp = udp_flow([(up, damage(rng, p)) for up, p in base], 51820)
        d.probe(fp)
        assert d.dissect(fp).flow["app_protocol"] == "wireguard"


def test_wireguard_go_capture():
    r = analyzer.analyze([str(CAPTURES / "wireguard.pcap")])
    [flow] = r.flows.itertuples()
    assert (flow.app_protocol, flow.encrypted, flow.protection) == ("wireguard", True, "wireguard")
    assert (flow.wireguard_initiations, flow.wireguard_responses, flow.wireguard_data_messages) == (1, 1, 6)
    assert (flow.client_port, flow.server_port) == (40000, 51820)
    assert r.anomalies.empty
