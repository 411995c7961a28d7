"""LDAP dissector (analyzer/dissect/ldap.py): LDAPMessages built per RFC 4511 (binds, StartTLS,
SASL), hostile input, the probe, and the corpus captures (zeek/ldap). tshark agreement:
tests/oracle/test_net_oracle.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support.flow_helpers import tcp_flow

import analyzer
from analyzer.dissect.base import DissectContext
from analyzer.dissect.ldap import STARTTLS_OID, LDAPDissector

CORPUS = Path(__file__).resolve().parents[4] / "shared" / "corpus" / "pcaps" / "zeek" / "ldap"


def tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    head = bytes([n]) if n < 0x80 else (b"\x81" + bytes([n]) if n < 0x100 else b"\x82" + n.to_bytes(2, "big"))
    return bytes([tag]) + head + value


def message(ident: int, op: bytes) -> bytes:
    return tlv(0x30, tlv(0x02, bytes([ident])) + op)


def bind(ident: int, dn: bytes, password: bytes | None = None, sasl: tuple[bytes, bytes | None] | None = None) -> bytes:
    if sasl is not None:
        auth = tlv(0xA3, tlv(0x04, sasl[0]) + (tlv(0x04, sasl[1]) if sasl[1] is not None else b""))
    else:
        auth = tlv(0x80, password or b"")
    return message(ident, tlv(0x60, tlv(0x02, b"\x03") + tlv(0x04, dn) + auth))


def result(ident: int, tag: int, code: int, extra: bytes = b"") -> bytes:
    return message(ident, tlv(tag, tlv(0x0A, bytes([code])) + tlv(0x04, b"") + tlv(0x04, b"") + extra))


def dissector() -> LDAPDissector:
    return LDAPDissector().for_run(DissectContext(frames=frozenset({"credentials"})))


DN = b"cn=alice,dc=example,dc=org"
SEARCH = message(2, tlv(0x63, tlv(0x04, b"") + tlv(0x0A, b"\x00") + tlv(0x0A, b"\x00") + tlv(0x02, b"\x00")
                        + tlv(0x02, b"\x00") + tlv(0x01, b"\x00") + tlv(0x87, b"objectClass") + tlv(0x30, b"")))
UNBIND = message(3, tlv(0x42, b"")[:2])


def test_simple_bind_is_a_credential_and_the_secret_is_not_kept():
    client = bind(1, DN, b"s3cret-ldap") + SEARCH + UNBIND
    server = result(1, 0x61, 0) + result(2, 0x65, 0)
    d = dissector()
    fp = tcp_flow(client, server, 1389)
    assert d.probe(fp)
    facts = d.dissect(fp)
    assert facts.flow == {"app_protocol": "ldap", "encrypted": False, "protection": "none",
                          "ldap_bind_kind": "simple", "ldap_bind_dn": DN.decode(), "ldap_bind_result": 0,
                          "ldap_messages": 5}
    (row,) = facts.rows["credentials"]
    assert (row["protocol"], row["mechanism"], row["username"], row["secret_in_clear"], row["secret_length"],
            row["accepted"]) == ("ldap", "simple", DN.decode(), True, 11, True)
    assert b"s3cret-ldap".decode() not in repr(facts)
    assert "anomalies" not in facts.rows


def test_anonymous_unauthenticated_and_refused_binds():
    d = dissector()
    anon = d.dissect(tcp_flow(bind(1, b""), result(1, 0x61, 0), 389))
    assert anon.flow["ldap_bind_kind"] == "anonymous" and "credentials" not in anon.rows
    unauth = d.dissect(tcp_flow(bind(1, DN), result(1, 0x61, 53), 389)).flow
    assert (unauth["ldap_bind_kind"], unauth["ldap_bind_result"]) == ("unauthenticated", 53)
    bad = d.dissect(tcp_flow(bind(1, DN, b"wrong"), result(1, 0x61, 49), 389))
    assert bad.flow["ldap_bind_result"] == 49 and bad.rows["credentials"][0]["accepted"] is False


def test_sasl_binds():
    d = dissector()
    plain = d.dissect(tcp_flow(bind(1, b"", sasl=(b"PLAIN", b"\0alice\0pw")), result(1, 0x61, 0), 389))
    assert (plain.flow["ldap_bind_kind"], plain.flow["ldap_sasl_mechanism"]) == ("sasl", "PLAIN")
    row = plain.rows["credentials"][0]
    assert (row["mechanism"], row["username"], row["secret_in_clear"], row["secret_length"]) == ("plain", "alice",
                                                                                                  True, 2)
    # GSSAPI: no secret, no row; a successful bind followed by wrapped buffers is the SASL layer
    sealed = b"\x00\x00\x00\x20\x05\x04\x06\xff" + bytes(28)
    signed = b"\x00\x00\x00\x20\x05\x04\x04\xff" + bytes(28)
    gss = bind(1, b"", sasl=(b"GSSAPI", b"\x60\x82"))
    for token, encrypted in ((sealed, True), (signed, False)):
        facts = d.dissect(tcp_flow(gss + token, result(1, 0x61, 0) + token, 389))
        assert (facts.flow["protection"], facts.flow["encrypted"]) == ("sasl", encrypted)
        assert "credentials" not in facts.rows and "anomalies" not in facts.rows
    ntlm = d.dissect(tcp_flow(gss + b"\x00\x00\x00\x20\x01\x00\x00\x00" + bytes(28), result(1, 0x61, 0), 389)).flow
    assert ntlm["protection"] == "sasl" and "encrypted" not in ntlm and ntlm["undecided_reason"] == "undecided"


def _starttls(ident: int) -> bytes:
    return message(ident, tlv(0x77, tlv(0x80, STARTTLS_OID)))


def test_starttls_hands_over_to_tls():
    client = _starttls(1)
    server = result(1, 0x78, 0, tlv(0x8A, STARTTLS_OID))
    facts = dissector().dissect(tcp_flow(client + b"\x16\x03\x01\x00\x05hello", server + b"\x16\x03\x03", 389))
    assert facts.handover is not None
    assert (facts.handover.to, facts.handover.to_server_offset, facts.handover.to_client_offset) == (
        "tls", len(client), len(server))
    assert facts.flow["starttls"] == "completed" and facts.flow["protection"] == "starttls"
    refused = dissector().dissect(tcp_flow(client + bind(2, DN, b"x"), result(1, 0x78, 2) + result(2, 0x61, 0), 389))
    assert refused.handover is None
    assert (refused.flow["starttls"], refused.flow["encrypted"]) == ("requested_refused", False)
    waiting = dissector().dissect(tcp_flow(client, server, 389)).flow
    assert waiting["undecided_reason"] == "upgrade_not_seen" and "encrypted" not in waiting
    rootdse = message(1, tlv(0x64, tlv(0x04, b"") + tlv(0x30, tlv(0x30, tlv(0x04, b"supportedExtension")
                                                                        + tlv(0x31, tlv(0x04, STARTTLS_OID))))))
    offered = dissector().dissect(tcp_flow(SEARCH, rootdse + result(2, 0x65, 0), 389)).flow
    assert offered["starttls"] == "offered_not_used"


def test_probe():
    d = dissector()
    assert d.probe(tcp_flow(bind(1, DN, b"x"), b"", 10389))
    assert d.probe(tcp_flow(b"", result(1, 0x61, 0), 10389))
    for client in [b"\x30\x0c\x02\x01\x01\x61", b"GET / HTTP/1.1\r\n\r\n", b"\x30\x82\x01\x00\x04\x01", b"\x16\x03\x01",
                   b"\x30\x80\x02\x01\x01\x60\x00\x00"]:
        assert not d.probe(tcp_flow(client + bytes(8), b"", 389)), client


def test_hostile_input_never_raises_and_is_bounded():
    d = dissector()
    many = bind(1, DN, b"x") * 5000
    op = tlv(0x60, tlv(0x02, b"\x03") + tlv(0x04, b"a" * 200) + tlv(0xA3, b"\xff" * 50))
    deep = tlv(0x30, tlv(0x02, b"\x01") + op)
    cases = [many, deep, b"\x30\x84\xff\xff\xff\xff\x02\x01\x01\x60", bytes(range(256)) * 40,
             bind(1, DN, b"x")[:-3], message(1, tlv(0x77, tlv(0x80, STARTTLS_OID))) + b"\x30\x00"]
    for client in cases:
        for server in (b"", result(1, 0x61, 0) * 3000, b"\x30\x03\x02\x01"):
            started = time.perf_counter()
            facts = d.dissect(tcp_flow(client, server, 389))
            assert time.perf_counter() - started < 0.5
            assert facts.flow["app_protocol"] == "ldap"
            assert len(facts.rows.get("credentials", [])) <= 256


@pytest.mark.parametrize("name", ["simpleauth.pcap", "simpleauth-diff-port.pcap", "ldap-starttls.pcap"])
def test_corpus_captures(name: str):
    path = CORPUS / name
    if not path.is_file():
        pytest.skip(f"corpus capture {path} not present (../shared/corpus)")
    result_ = analyzer.analyze([str(path)], on_problem=lambda p: None)
    ldap = result_.flows[result_.flows["app_protocol"] == "ldap"]
    assert len(ldap) == 1
    row = ldap.iloc[0]
    if name == "ldap-starttls.pcap":
        assert (row["starttls"], row["protection"], row["encrypted"], row["tls_version"]) == (
            "completed", "starttls", True, "TLS 1.3")
        assert len(result_.tls) == 1
    else:
        assert (row["ldap_bind_kind"], row["encrypted"], row["protection"]) == ("simple", False, "none")
        creds = result_.credentials
        assert list(creds["mechanism"]) == ["simple", "simple"] and creds["secret_in_clear"].all()
        assert creds["accepted"].all()
