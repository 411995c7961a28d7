"""IPsec dissector (analyzer/dissect/ipsec.py): IKE headers (RFC 2408, RFC 7296), NAT traversal
framing (RFC 3948), raw ESP flows, hostile input, and the corpus's real IKE/ESP captures (tshark
agreement: tests/oracle/test_tunnels_oracle.py)."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest
from support.tunnel_helpers import damage, udp_flow

import analyzer
from analyzer.dissect.base import FlowPayload
from analyzer.dissect.ipsec import IPsecDissector, ike_header

PCAPS = Path(__file__).resolve().parents[4] / "shared" / "corpus" / "pcaps"
SPI_I, SPI_R = bytes.fromhex("0102030405060708"), bytes.fromhex("a1a2a3a4a5a6a7a8")


def ike(exchange: int, *, version: int = 0x20, next_payload: int = 33, flags: int = 0x08, spi_r: bytes = bytes(8),
        body: bytes = b"\0" * 40) -> bytes:
    return struct.pack(">8s8sBBBBII", SPI_I, spi_r, next_payload, version, exchange, flags, 0, 28 + len(body)) + body


def esp(spi: int, seq: int) -> bytes:
    return struct.pack(">II", spi, seq) + b"\x5a" * 48


def test_ike_header():
    assert ike_header(ike(34)) is not None
    assert ike_header(ike(34)[:-1]) is None  # length field must equal the message
    assert ike_header(ike(34, version=0x30)) is None
    assert ike_header(ike(2, version=0x20)) is None  # an IKEv1 exchange type in an IKEv2 header
    assert ike_header(ike(2, version=0x10)) is not None
    assert ike_header(b"\0" * 8 + ike(34)[8:]) is None  # initiator SPI is never zero


def test_ikev2_sa_init_then_encrypted_auth():
    d = IPsecDissector()
    fp = udp_flow([(True, ike(34)), (False, ike(34, spi_r=SPI_R, flags=0x20)),
                   (True, ike(35, spi_r=SPI_R, next_payload=46)), (False, ike(35, spi_r=SPI_R, next_payload=46))],
                  500, client_port=500)
    assert d.probe(fp)
    assert d.dissect(fp).flow == {
        "protection": "ipsec", "ike_version": "2.0", "ike_initiator_spi": SPI_I.hex(), "ike_responder_spi": SPI_R.hex(),
        "ike_exchanges": "IKE_SA_INIT,IKE_AUTH", "ike_encrypted_messages": 2, "app_protocol": "ike", "encrypted": True}


def test_sa_init_only_is_undecided():
    flow = IPsecDissector().dissect(udp_flow([(True, ike(34)), (False, ike(34, spi_r=SPI_R))], 500)).flow
    assert (flow["app_protocol"], flow["undecided_reason"], flow["protection"]) == (
        "ike", "handshake_incomplete", "ipsec")
    assert "encrypted" not in flow


def test_ikev1_main_mode_encryption_flag():
    flow = IPsecDissector().dissect(udp_flow([(True, ike(2, version=0x10, flags=0)),
                                              (True, ike(2, version=0x10, flags=1, spi_r=SPI_R))], 500)).flow
    assert (flow["ike_version"], flow["ike_exchanges"], flow["ike_encrypted_messages"], flow["encrypted"]) == (
        "1.0", "main_mode", 1, True)


def test_nat_traversal_ike_and_esp():
    d = IPsecDissector()
    marker = b"\0\0\0\0"
    fp = udp_flow([(True, marker + ike(35, spi_r=SPI_R, next_payload=46)), (False, b"\xff"),
                   (True, esp(0xC0000001, 1)), (False, esp(0x0C000002, 1)), (True, esp(0xC0000001, 2))], 4500)
    assert d.probe(fp)
    facts = d.dissect(fp)
    assert facts.flow["app_protocol"] == "esp" and facts.flow["encrypted"] is True
    assert (facts.flow["esp_packets"], facts.flow["esp_spis"], facts.flow["ipsec_nat_traversal"]) == (
        3, "c0000001,0c000002", True)
    assert "anomalies" not in facts.rows


def test_esp_only_needs_port_4500_and_a_constant_spi():
    d = IPsecDissector()
    assert d.probe(udp_flow([(True, esp(7, 1)), (True, esp(7, 2)), (False, esp(9, 1))], 4500))
    assert not d.probe(udp_flow([(True, esp(7, 1)), (True, esp(8, 2))], 4500))  # SPI changes: not one SA
    assert not d.probe(udp_flow([(True, esp(7, 1))], 4501))
    assert not d.probe(udp_flow([(True, esp(0, 1))], 4500))
    assert not d.probe(udp_flow([], 4500))


def test_ike_on_500_from_client_port_4500_is_not_read_as_esp():
    flow = IPsecDissector().dissect(udp_flow([(True, ike(34))], 500, client_port=4500)).flow
    assert flow["app_protocol"] == "ike" and "esp_packets" not in flow


def test_raw_esp_flow():
    fp = FlowPayload(uid="C", transport="esp", client_ip="a", server_ip="b", client_port=-1, server_port=-1,
                     ts_start=0.0)
    d = IPsecDissector()
    assert d.probe(fp)
    assert d.dissect(fp).flow == {"app_protocol": "esp", "encrypted": True, "protection": "ipsec"}


def test_damaged_datagrams_never_raise():
    rng = random.Random("ipsec")
    d = IPsecDissector()
    base = [(True, ike(34)), (False, ike(34, spi_r=SPI_R)), (True, b"\0\0\0\0" + ike(35, next_payload=46)),
            (True, esp(5, 1)), (False, b"\xff")]
    for _ in range(1000):
        fp = udp_flow([(up, damage(rng, p)) for up, p in base], rng.choice([500, 4500]))
        d.probe(fp)
        assert d.dissect(fp).flow["protection"] == "ipsec"


@pytest.mark.skipif(not PCAPS.is_dir(), reason="../shared/corpus is absent (real IKE/ESP captures)")
def test_corpus_ike_and_esp():
    r = analyzer.analyze([str(PCAPS / "ndpi" / "esp.pcapng")])
    by = {f.transport: f for f in r.flows.itertuples()}
    assert (by["udp"].app_protocol, by["udp"].ike_exchanges, by["udp"].encrypted) == ("ike", "IKE_SA_INIT,IKE_AUTH",
                                                                                       True)
    assert (by["esp"].app_protocol, by["esp"].encrypted, by["esp"].protection) == ("esp", True, "ipsec")
    v6 = analyzer.analyze([str(PCAPS / "zeek" / "ip6_esp.pcap")]).flows
    esp_flows = v6[v6.transport == "esp"]
    assert len(esp_flows) == 12 and (esp_flows.app_protocol == "esp").all() and esp_flows.encrypted.all()
