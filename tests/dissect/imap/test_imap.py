"""IMAP dissector (analyzer/dissect/imap.py): byte streams per RFC 9051 / 2595 / 4959, hostile input,
and the corpus capture ndpi/imap.pcap. tshark agreement: test_plaintext_oracle.py."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest
from support.flow_helpers import tcp_flow

import analyzer
from analyzer.dissect.base import DissectContext, FlowPayload
from analyzer.dissect.imap import IMAPDissector, astrings

CORPUS = Path(__file__).resolve().parents[4] / "shared" / "corpus" / "pcaps"


def flow(client: bytes, server: bytes, port: int = 143) -> FlowPayload:
    return tcp_flow(client, server, port)


def dissector() -> IMAPDissector:
    return IMAPDissector().for_run(DissectContext(frames=frozenset({"credentials"})))


GREETING = b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED AUTH=PLAIN] Dovecot ready.\r\n"


def test_starttls_hand_over_and_capabilities():
    client = b"a1 CAPABILITY\r\na2 STARTTLS\r\n"
    server = GREETING + b"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\na1 OK done\r\na2 OK Begin TLS now\r\n"
    d = dissector()
    assert d.probe(flow(client, server, port=10143))
    facts = d.dissect(flow(client + b"\x16\x03\x01", server + b"\x16\x03\x03"))
    assert facts.handover is not None
    assert (facts.handover.to_server_offset, facts.handover.to_client_offset) == (len(client), len(server))
    assert facts.flow == {"app_protocol": "imap", "imap_banner": GREETING[:-2].decode(),
                          "imap_capabilities": "IMAP4REV1 STARTTLS LOGINDISABLED AUTH=PLAIN",
                          "imap_logindisabled": True, "starttls": "completed", "protection": "starttls"}


def test_refused_and_unused_starttls():
    d = dissector()
    refused = d.dissect(flow(b"a STARTTLS\r\n", GREETING + b"a NO not now\r\n")).flow
    assert refused["starttls"] == "requested_refused" and refused["encrypted"] is False
    unused = d.dissect(flow(b"a NOOP\r\n", GREETING + b"a OK\r\n")).flow
    assert unused["starttls"] == "offered_not_used"
    bare = d.dissect(flow(b"a NOOP\r\n", b"* OK ready\r\na OK\r\n")).flow
    assert "starttls" not in bare and bare["encrypted"] is False  # capabilities never shown


def test_login_with_quoted_strings_and_literals_and_authenticate():
    assert astrings(b'"al\\"ice" pass', [], 2) == [b'al"ice', b"pass"]
    client = (b'a1 LOGIN "alice" {6}\r\ns3cr t\r\n'
              b"a2 AUTHENTICATE PLAIN\r\n" + base64.b64encode(b"\0bob\0pw") + b"\r\n"
              b"a3 AUTHENTICATE PLAIN " + base64.b64encode(b"\0carol\0pw2") + b"\r\n"
              b"a4 SELECT INBOX\r\na5 LOGOUT\r\n")
    server = (b"* OK ready\r\n+ go ahead\r\na1 OK logged in\r\n+ \r\na2 NO bad\r\na3 OK\r\n"
              b"* 1 FETCH (BODY[] {20}\r\na3 OK tricky literal\r\n)\r\na4 OK\r\n* BYE\r\na5 OK\r\n")
    rows = dissector().dissect(flow(client, server)).rows["credentials"]
    assert [(r["mechanism"], r["username"], r["secret_length"], r["accepted"]) for r in rows] == [
        ("login_command", "alice", 6, True), ("plain", "bob", 2, False), ("plain", "carol", 3, True)]


def test_probe():
    d = dissector()
    assert d.probe(flow(b"", b"* PREAUTH ready\r\n", port=9999))
    assert d.probe(flow(b"A001 CAPABILITY\r\n", b"", port=9999))
    assert not d.probe(flow(b"+OK\r\n", b"+OK POP3\r\n"))
    assert not d.probe(flow(b"GET / HTTP/1.1\r\n", b""))


def test_hostile_input_never_raises_and_is_bounded():
    d = dissector()
    clients = [b"a LOGIN {999999999999}\r\n", b"a LOGIN {5}\r\n", b"a LOGIN " + b"x" * 100_000,
               b"a AUTHENTICATE PLAIN\r\n" + b"\xff\r\n" * 5000, b"a NOOP\r\n" * 50_000, bytes(range(256)) * 64,
               b"a LOGIN {3}\r\n" * 1000]
    servers = [GREETING + b"+ \r\n" * 20_000, b"* OK\r\n" + b"* 1 FETCH {99999999999}\r\n", b"* OK " + b"\x00" * 70_000,
               b"* OK\r\n" + b"* x\r\n" * 30_000]
    for client in clients:
        for server in servers:
            started = time.perf_counter()
            facts = d.dissect(flow(client, server))
            assert time.perf_counter() - started < 0.5
            assert facts.flow["app_protocol"] == "imap"


def test_corpus_capture():
    path = CORPUS / "ndpi" / "imap.pcap"
    if not path.is_file():
        pytest.skip("corpus not present")
    result = analyzer.analyze([str(path)], on_problem=lambda p: None)
    imap = result.flows[result.flows["app_protocol"] == "imap"]
    assert len(imap) == 1 and bool(imap["encrypted"].iloc[0]) is False
    assert set(result.credentials["protocol"]) <= {"imap"}
