"""NNTP dissector (analyzer/dissect/nntp.py): greeting, CAPABILITIES, STARTTLS hand-over, AUTHINFO
USER/PASS and SASL, multi-line answers and posted articles skipped, hostile input."""

from __future__ import annotations

import base64
import time

from support.flow_helpers import tcp_flow

from analyzer.dissect.base import DissectContext, FlowPayload
from analyzer.dissect.nntp import NNTPDissector

SECRET = b"s3cret nntp"  # a space inside: AUTHINFO PASS takes the rest of the line
GREETING = b"200 news.example.com InterNetNews NNRP server INN 2.7 ready (posting ok)\r\n"
CAPS = b"101 Capability list:\r\nVERSION 2\r\nREADER\r\nSTARTTLS\r\nAUTHINFO USER\r\n.\r\n"


def flow(client: bytes, server: bytes, port: int = 119) -> FlowPayload:
    return tcp_flow(client, server, port)


def dissector() -> NNTPDissector:
    return NNTPDissector().for_run(DissectContext(frames=frozenset({"credentials"})))


def test_starttls_hand_over():
    client = b"CAPABILITIES\r\nSTARTTLS\r\n"
    server = GREETING + CAPS + b"382 Continue with TLS negotiation\r\n"
    d = dissector()
    assert d.probe(flow(client, server, port=1119))
    facts = d.dissect(flow(client + b"\x16\x03\x01", server + b"\x16\x03\x03"))
    assert facts.handover is not None
    assert (facts.handover.to_server_offset, facts.handover.to_client_offset) == (len(client), len(server))
    assert facts.flow == {"app_protocol": "nntp", "nntp_banner": GREETING[:-2].decode(), "nntp_posting": True,
                          "starttls": "completed", "protection": "starttls"}
    refused = d.dissect(flow(client, GREETING + CAPS + b"580 Can not initiate TLS negotiation\r\n")).flow
    assert refused["starttls"] == "requested_refused" and refused["encrypted"] is False
    unanswered = d.dissect(flow(client, GREETING + CAPS)).flow
    assert (unanswered["protection"], unanswered["undecided_reason"], "starttls" in unanswered) == (
        "starttls", "handshake_incomplete", False)


def test_authinfo_and_skipped_answers():
    client = (b"MODE READER\r\nAUTHINFO USER alice\r\nAUTHINFO PASS " + SECRET + b"\r\nLIST\r\nPOST\r\n"
              b"From: a\r\nSubject: AUTHINFO PASS x\r\n\r\nbody\r\n.\r\nAUTHINFO SASL PLAIN "
              + base64.b64encode(b"\0bob\0pw") + b"\r\nQUIT\r\n")
    server = (b"201 no posting\r\n201 reader\r\n381 password\r\n281 ok\r\n215 list\r\nalt.test 2 1 y\r\n"
              b"AUTHINFO PASS evil\r\n.\r\n340 send\r\n240 posted\r\n481 refused\r\n205 bye\r\n")
    facts = dissector().dissect(flow(client, server))
    assert facts.flow["nntp_posting"] is False and "starttls" not in facts.flow  # no CAPABILITIES: no offer seen
    assert facts.flow["encrypted"] is False
    rows = facts.rows["credentials"]
    assert [(r["mechanism"], r["username"], r["secret_in_clear"], r["secret_length"], r["accepted"]) for r in rows] == [
        ("user_pass", "alice", True, len(SECRET), True), ("plain", "bob", True, 2, False)]
    assert SECRET.decode() not in repr(facts.rows)


def test_probe():
    d = dissector()
    assert d.probe(flow(b"", GREETING))
    assert not d.probe(flow(b"EHLO x\r\n", b"220 mx ESMTP\r\n"))
    assert not d.probe(flow(b"GET / HTTP/1.1\r\n", b"200 OK\r\n"))  # not an NNTP command


def test_hostile_input_never_raises_and_is_bounded():
    d = dissector()
    clients = [b"AUTHINFO SASL PLAIN\r\n" + b"x\r\n" * 30_000, b"LIST\r\n" * 30_000, b"POST\r\n" + b"a" * 70_000,
               b"AUTHINFO " + b"x" * 100_000, b"AUTHINFO SASL \r\nPLAIN AGFsaWNlAHNlY3JldA==\r\n"]
    servers = [GREETING + b"383 \r\n" * 20_000, GREETING + b"215 x\r\n" + b"g\r\n" * 50_000, b"200 " + b"\0" * 70_000]
    for client in clients:
        for server in servers:
            started = time.perf_counter()
            facts = d.dissect(flow(client, server))
            assert time.perf_counter() - started < 0.5
            assert facts.flow["app_protocol"] == "nntp"
