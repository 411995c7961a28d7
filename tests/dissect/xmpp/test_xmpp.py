"""XMPP dissector (analyzer/dissect/xmpp.py): stream header, features, STARTTLS hand-over, SASL PLAIN in
the clear, hostile input, the corpus capture. tshark agreement: tests/oracle/test_data_oracle.py."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest
from support.flow_helpers import tcp_flow

import analyzer
from analyzer.dissect.base import DissectContext, FlowPayload
from analyzer.dissect.xmpp import XMPPDissector

CORPUS = Path(__file__).resolve().parents[4] / "shared" / "corpus" / "pcaps"
SECRET = b"s3cret-xmpp"
OPEN = (b"<?xml version='1.0'?><stream:stream to='example.com' version='1.0' xmlns='jabber:client' "
        b"xmlns:stream='http://etherx.jabber.org/streams'>")
HELLO = (b"<?xml version='1.0'?><stream:stream from='example.com' id='x1' version='1.0' xmlns='jabber:client' "
         b"xmlns:stream='http://etherx.jabber.org/streams'>")


def features(tls: bytes = b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>") -> bytes:
    return (b"<stream:features>" + tls + b"<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
            b"<mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></mechanisms></stream:features>")


STARTTLS = b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
PROCEED = b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"


def flow(client: bytes, server: bytes, port: int = 5222) -> FlowPayload:
    return tcp_flow(client, server, port)


def dissector() -> XMPPDissector:
    return XMPPDissector().for_run(DissectContext(frames=frozenset({"credentials"})))


def test_starttls_hands_over_after_proceed():
    client, server = OPEN + STARTTLS, HELLO + features() + PROCEED
    d = dissector()
    assert d.probe(flow(client, server, port=15222))
    facts = d.dissect(flow(client + b"\x16\x03\x01\x00\x05hello", server + b"\x16\x03\x03\x00\x02hi"))
    assert facts.handover is not None
    assert (facts.handover.to_server_offset, facts.handover.to_client_offset) == (len(client), len(server))
    assert facts.flow == {"app_protocol": "xmpp", "xmpp_domain": "example.com", "xmpp_stream": "c2s",
                          "xmpp_mechanisms": "SCRAM-SHA-1 PLAIN", "starttls": "completed",
                          "xmpp_starttls_required": False, "protection": "starttls"}
    required = features(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>")
    facts = d.dissect(flow(OPEN, HELLO + required))
    assert (facts.flow["starttls"], facts.flow["xmpp_starttls_required"], facts.flow["encrypted"]) == (
        "offered_not_used", True, False)
    tls_failure = b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
    refused = d.dissect(flow(OPEN + STARTTLS, HELLO + features() + tls_failure))
    assert refused.flow["starttls"] == "requested_refused" and refused.handover is None
    unanswered = d.dissect(flow(OPEN + STARTTLS, HELLO + features())).flow
    assert unanswered == {"app_protocol": "xmpp", "xmpp_domain": "example.com", "xmpp_stream": "c2s",
                          "xmpp_mechanisms": "SCRAM-SHA-1 PLAIN", "protection": "starttls",
                          "undecided_reason": "handshake_incomplete"}


def test_plain_auth_in_the_clear():
    auth = b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + base64.b64encode(
        b"\0alice\0" + SECRET) + b"</auth>"
    success = b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"
    facts = dissector().dissect(flow(OPEN + auth, HELLO + features(b"") + success))
    assert facts.flow["starttls"] == "not_offered" and facts.flow["encrypted"] is False
    (row,) = facts.rows["credentials"]
    assert (row["protocol"], row["mechanism"], row["username"], row["secret_in_clear"], row["secret_length"],
            row["accepted"]) == ("xmpp", "plain", "alice", True, len(SECRET), True)
    failure = b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>"
    failed = dissector().dissect(flow(OPEN + auth, HELLO + features(b"") + failure))
    assert failed.rows["credentials"][0]["accepted"] is False
    assert SECRET.decode() not in repr(facts.rows) + repr(failed.rows)


def test_probe():
    d = dissector()
    assert d.probe(flow(b"", HELLO))
    assert not d.probe(flow(b"<?xml version='1.0'?><soap:Envelope>", b""))
    assert not d.probe(flow(b"GET / HTTP/1.1\r\n\r\n", b""))


def test_hostile_input_never_raises_and_is_bounded():
    d = dissector()
    clients = [OPEN + b"<starttls " * 20_000, OPEN + b"<auth mechanism='PLAIN'>" + b"A" * 60_000,
               b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'" + b" to='x'" * 10_000,
               OPEN + b"<response>" * 10_000]
    servers = [HELLO + b"<stream:features>" + b"<mechanism>X</mechanism>" * 5000, HELLO + b"<proceed " * 20_000,
               HELLO + b"<failure" * 20_000, b""]
    for client in clients:
        for server in servers:
            started = time.perf_counter()
            facts = d.dissect(flow(client, server))
            assert time.perf_counter() - started < 0.5
            assert facts.flow["app_protocol"] == "xmpp"


def test_corpus_capture():
    path = CORPUS / "zeek" / "tls" / "xmpp-starttls.pcap"
    if not path.is_file():
        pytest.skip("corpus capture zeek/tls/xmpp-starttls.pcap not present (../shared/corpus)")
    result = analyzer.analyze([str(path)], on_problem=lambda p: None)
    (row,) = result.flows.itertuples()
    assert (row.app_protocol, row.starttls, row.protection, row.encrypted, row.tls_version, row.xmpp_domain,
            row.xmpp_starttls_required) == ("xmpp", "completed", "starttls", True, "TLS 1.2", "jabber.ccc.de", True)
    assert len(result.tls) == 1
