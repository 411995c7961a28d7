"""POP3 dissector (analyzer/dissect/pop3.py): byte streams per RFC 1939 / 2449 / 2595 / 5034, hostile
input, and the corpus captures (STLS, USER/PASS). tshark agreement: test_plaintext_oracle.py."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest
from support.flow_helpers import tcp_flow

import analyzer
from analyzer.dissect.base import DissectContext, FlowPayload
from analyzer.dissect.pop3 import POP3Dissector

CORPUS = Path(__file__).resolve().parents[4] / "shared" / "corpus" / "pcaps"


def flow(client: bytes, server: bytes, port: int = 110) -> FlowPayload:
    return tcp_flow(client, server, port)


def dissector() -> POP3Dissector:
    return POP3Dissector().for_run(DissectContext(frames=frozenset({"credentials"})))


GREETING = b"+OK POP3 ready <1896.697170952@dbc.mtview.ca.us>\r\n"
CAPA = b"+OK Capability list follows\r\nUSER\r\nSTLS\r\nSASL PLAIN\r\n.\r\n"


def test_stls_hand_over():
    client = b"CAPA\r\nSTLS\r\n"
    server = GREETING + CAPA + b"+OK Begin TLS negotiation\r\n"
    d = dissector()
    assert d.probe(flow(client, server, port=1110))
    facts = d.dissect(flow(client + b"\x16\x03\x01", server + b"\x16\x03\x03"))
    assert facts.handover is not None
    assert (facts.handover.to_server_offset, facts.handover.to_client_offset) == (len(client), len(server))
    assert facts.flow == {"app_protocol": "pop3", "pop3_banner": GREETING[:-2].decode(), "starttls": "completed",
                          "protection": "starttls"}
    refused = d.dissect(flow(b"CAPA\r\nSTLS\r\n", GREETING + CAPA + b"-ERR no\r\n")).flow
    assert refused["starttls"] == "requested_refused" and refused["encrypted"] is False
    assert d.dissect(flow(b"CAPA\r\nQUIT\r\n", GREETING + CAPA + b"+OK bye\r\n")).flow["starttls"] == "offered_not_used"


def test_logins_and_multiline_answers_are_skipped():
    client = (b"USER alice\r\nPASS pa ss\r\nLIST\r\nRETR 1\r\nAPOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n"
              b"AUTH PLAIN\r\n" + base64.b64encode(b"\0bob\0pw") + b"\r\nQUIT\r\n")
    server = (GREETING + b"+OK\r\n+OK maildrop\r\n+OK 1 messages\r\n1 120\r\n.\r\n"
              b"+OK 120 octets\r\nUSER evil\r\n..PASS x\r\n.\r\n-ERR permission denied\r\n+ \r\n+OK\r\n+OK bye\r\n")
    rows = dissector().dissect(flow(client, server)).rows["credentials"]
    assert [(r["mechanism"], r["username"], r["secret_in_clear"], r["secret_length"], r["accepted"]) for r in rows] == [
        ("user_pass", "alice", True, 5, True), ("apop", "mrose", False, None, False), ("plain", "bob", True, 2, True)]


def test_probe():
    d = dissector()
    assert d.probe(flow(b"", b"+OK hello\r\n", port=5110))
    assert d.probe(flow(b"USER x\r\n", b"+OK hello\r\n", port=5110))
    assert not d.probe(flow(b"GET / HTTP/1.1\r\n", b"+OK\r\n"))
    assert not d.probe(flow(b"a1 LOGIN x y\r\n", b"* OK IMAP\r\n"))


def test_hostile_input_never_raises_and_is_bounded():
    d = dissector()
    clients = [b"USER " + b"x" * 100_000, b"AUTH PLAIN\r\n" + b"*\r\n", b"CAPA\r\n" * 30_000, bytes(range(256)) * 64,
               b"LIST\r\nRETR 1\r\n" * 1000]
    servers = [GREETING + b"+ \r\n" * 20_000, GREETING + b"+OK\r\n" + b"x\r\n" * 60_000, b"+OK " + b"\x00" * 70_000]
    for client in clients:
        for server in servers:
            started = time.perf_counter()
            facts = d.dissect(flow(client, server))
            assert time.perf_counter() - started < 0.5
            assert facts.flow["app_protocol"] == "pop3"


@pytest.mark.parametrize("name", ["ndpi/pop3_stls.pcap", "suricata-verify/pop3-auth-01/input.pcap"])
def test_corpus_captures(name: str):
    path = CORPUS / name
    if not path.is_file():
        pytest.skip("corpus not present")
    result = analyzer.analyze([str(path)], on_problem=lambda p: None)
    pop3 = result.flows[result.flows["app_protocol"] == "pop3"]
    assert len(pop3) == 1
    if name.startswith("ndpi/pop3_stls"):
        row = pop3.iloc[0]
        assert row["starttls"] == "completed" and bool(row["tls_upgraded"]) and len(result.tls) == 1
    else:
        assert bool(pop3["encrypted"].iloc[0]) is False and len(result.credentials) >= 1


def test_redis_inline_auth_answered_by_a_bare_ok_is_not_pop3() -> None:
    """Redis's inline `AUTH password` answered `+OK` on a port of no hint was claimed by POP3 (its
    probe saw a `+OK` reply and the POP3 command AUTH); it is Redis's, and POP3's own AUTH keeps
    its claim."""
    from analyzer.dissect.redis import DISSECTOR as REDIS

    pop3 = POP3Dissector()
    for client, server in ((b"AUTH s3cret-redis\r\nPING\r\n", b"+OK\r\n+PONG\r\n"),
                           (b"AUTH alice s3cret-redis\r\n", b"+OK\r\n")):
        flow = tcp_flow(client, server, 7777)
        assert not pop3.probe(flow)
        assert REDIS.probe(flow)
    for client, server in ((b"AUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n", b"+OK POP3 ready\r\n+OK\r\n"),
                           (b"AUTH SCRAM-SHA-256\r\n", b"+OK\r\n+ cj1...\r\n"),
                           (b"USER alice\r\n", b"+OK\r\n+OK\r\n")):
        assert pop3.probe(tcp_flow(client, server, 7777))
