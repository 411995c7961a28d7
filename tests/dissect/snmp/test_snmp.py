"""SNMP dissector (analyzer/dissect/snmp.py): v1/v2c messages (community -> credentials row, never the
string) and v3 messages per RFC 3412/3414 (msgFlags, USM user, encryptedPDU), hostile input, the probe,
and the corpus captures. tshark agreement: tests/oracle/test_net_oracle.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import analyzer
from analyzer.dissect.base import Datagram, DissectContext, FlowPayload
from analyzer.dissect.snmp import SNMPDissector, parse_snmp

CORPUS = Path(__file__).resolve().parents[4] / "shared" / "corpus" / "pcaps"


def tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    head = bytes([n]) if n < 0x80 else (b"\x81" + bytes([n]) if n < 0x100 else b"\x82" + n.to_bytes(2, "big"))
    return bytes([tag]) + head + value


def pdu(tag: int) -> bytes:
    varbind = tlv(0x30, tlv(0x06, b"\x2b\x06\x01\x02\x01\x01\x01\x00") + b"\x05\x00")
    return tlv(tag, tlv(0x02, b"\x01") + tlv(0x02, b"\x00") + tlv(0x02, b"\x00") + tlv(0x30, varbind))


def v2c(community: bytes, tag: int = 0xA0, version: int = 1) -> bytes:
    return tlv(0x30, tlv(0x02, bytes([version])) + tlv(0x04, community) + pdu(tag))


def v3(flags: int, user: bytes, encrypted: bool, tag: int = 0xA0) -> bytes:
    header = tlv(0x30, tlv(0x02, b"\x01") + tlv(0x02, b"\x05\xdc") + tlv(0x04, bytes([flags])) + tlv(0x02, b"\x03"))
    usm = tlv(0x30, tlv(0x04, b"\x80\x00\x1f\x88\x80") + tlv(0x02, b"\x01") + tlv(0x02, b"\x10") + tlv(0x04, user)
              + tlv(0x04, bytes(12) if flags & 1 else b"") + tlv(0x04, bytes(8) if flags & 2 else b""))
    body = tlv(0x04, bytes(range(40))) if encrypted else tlv(0x30, tlv(0x04, b"") + tlv(0x04, b"") + pdu(tag))
    return tlv(0x30, tlv(0x02, b"\x03") + header + tlv(0x04, usm) + body)


def udp(datagrams: list[tuple[bool, bytes]], port: int = 161) -> FlowPayload:
    return FlowPayload(uid="S1", transport="udp", client_ip="10.0.0.1", server_ip="10.0.0.2", client_port=40000,
                       server_port=port, ts_start=0.0,
                       datagrams=[Datagram(float(i), s, p) for i, (s, p) in enumerate(datagrams)])


def dissector() -> SNMPDissector:
    return SNMPDissector().for_run(DissectContext(frames=frozenset({"credentials"})))


def test_v2c_community_is_a_credential():
    d = dissector()
    fp = udp([(True, v2c(b"s3cret-snmp")), (False, v2c(b"s3cret-snmp", 0xA2)), (True, v2c(b"other", 0xA3))])
    assert d.probe(fp)
    facts = d.dissect(fp)
    assert facts.flow == {"app_protocol": "snmp", "encrypted": False, "protection": "none", "snmp_version": "2c",
                          "snmp_pdu": "get-request", "snmp_messages": 3}
    rows = facts.rows["credentials"]
    assert [(r["mechanism"], r["username"], r["secret_in_clear"], r["secret_length"], r["accepted"]) for r in rows] == [
        ("community", None, True, 11, True), ("community", None, True, 5, None)]
    assert rows[0]["secret_fingerprint"] != rows[1]["secret_fingerprint"]
    assert "s3cret-snmp" not in repr(facts)
    v1 = d.dissect(udp([(True, v2c(b"public", 0xA4, version=0))], port=162)).flow
    assert (v1["snmp_version"], v1["snmp_pdu"]) == ("1", "trap")


def test_v3_levels():
    d = dissector()
    discovery = v3(0x04, b"", False)
    report = v3(0x00, b"", False, 0xA8)
    priv = d.dissect(udp([(True, discovery), (False, report), (True, v3(0x07, b"alice", True)),
                          (False, v3(0x03, b"alice", True))]))
    assert priv.flow == {"app_protocol": "snmp", "encrypted": True, "protection": "snmpv3", "snmp_version": "3",
                         "snmp_pdu": "get-request", "snmp_security_level": "authPriv", "snmp_user": "alice",
                         "snmp_messages": 4}
    assert "credentials" not in priv.rows
    auth = d.dissect(udp([(True, discovery), (True, v3(0x05, b"bob", False))])).flow
    assert (auth["encrypted"], auth["protection"], auth["snmp_security_level"], auth["snmp_user"]) == (
        False, "none", "authNoPriv", "bob")
    none = d.dissect(udp([(True, v3(0x04, b"carol", False))])).flow
    assert (none["encrypted"], none["snmp_security_level"]) == (False, "noAuthNoPriv")


def test_probe_and_parse_refuse_other_payloads():
    d = dissector()
    for payload in [b"\x30\x0c\x02\x01\x02\x04", b"\x30\x82\x00\x10\x02\x01\x01\x30" + bytes(16), bytes(20),
                    b"\x16\xfe\xfd" + bytes(30), b"<13>Dec  6 host: hi"]:
        assert not d.probe(udp([(True, payload)])), payload
    assert parse_snmp(v2c(b"x")[:-2]) is None
    assert parse_snmp(tlv(0x30, tlv(0x02, b"\x01") + tlv(0x04, b"x") + tlv(0x30, b""))) is None  # not a PDU


def test_hostile_input_never_raises():
    d = dissector()
    cases = [b"\x30\x84\xff\xff\xff\xff\x02\x01\x01\x04", bytes(range(256)), v3(0x07, b"u" * 200, True)[:50],
             b"\x30\x06\x02\x01\x03\x30\x01\x00", v2c(b"x" * 300)]
    started = time.perf_counter()
    for payload in cases:
        facts = d.dissect(udp([(True, payload)] * 32))
        assert facts.flow["app_protocol"] == "snmp"
    many = d.dissect(udp([(True, v2c(str(i).encode())) for i in range(32)]))
    assert len(many.rows["credentials"]) == 8
    assert time.perf_counter() - started < 0.5


CAPTURES = {"zeek/snmp/snmpv1_get.pcap": ("1", False), "zeek/snmp/snmpv2_get.pcap": ("2c", False),
            "suricata-verify/snmp-v2c-get/SNMPv2c_get_requests.pcap": ("2c", False),
            "suricata-verify/snmp-v3-encrypted/SNMPv3.pcap": ("3", True)}


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_corpus_captures(name: str):
    path = CORPUS / name
    if not path.is_file():
        pytest.skip(f"corpus capture {path} not present (../shared/corpus)")
    result = analyzer.analyze([str(path)], on_problem=lambda p: None)
    flows = result.flows
    snmp = flows[flows["app_protocol"] == "snmp"]
    assert len(snmp) == len(flows[flows["server_port"] == 161]) > 0
    version, encrypted = CAPTURES[name]
    assert set(snmp["snmp_version"]) == {version} and set(snmp["encrypted"]) == {encrypted}
    creds = result.credentials
    if encrypted:
        assert creds.empty and set(snmp["snmp_user"]) == {"admin"}
    else:
        assert set(creds["uid"]) == set(snmp["uid"]) and creds["secret_in_clear"].all()
