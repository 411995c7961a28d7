"""Redis dissector (analyzer/dissect/redis.py): RESP2/RESP3 commands and replies, AUTH and HELLO
AUTH credentials, hostile input, the corpus capture. tshark agreement: tests/oracle/test_data_oracle.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support.flow_helpers import tcp_flow

import analyzer
from analyzer.dissect.base import DissectContext, FlowPayload
from analyzer.dissect.redis import RedisDissector, read_command, skip_value

CORPUS = Path(__file__).resolve().parents[4] / "shared" / "corpus" / "pcaps"
SECRET = b"s3cret-redis"


def resp(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def flow(client: bytes, server: bytes, port: int = 6379) -> FlowPayload:
    return tcp_flow(client, server, port)


def dissector() -> RedisDissector:
    return RedisDissector().for_run(DissectContext(frames=frozenset({"credentials"})))


def test_auth_and_hello_auth_rows_with_outcomes():
    client = (resp(b"AUTH", SECRET) + resp(b"AUTH", b"alice", SECRET) + resp(b"GET", b"k")
              + resp(b"HELLO", b"3", b"AUTH", b"bob", SECRET, b"SETNAME", b"app"))
    server = (b"-WRONGPASS invalid username-password pair\r\n+OK\r\n$5\r\nvalue\r\n"
              b"%2\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n")
    d = dissector()
    assert d.probe(flow(client, server, port=7000))
    facts = d.dissect(flow(client, server))
    assert facts.flow == {"app_protocol": "redis", "encrypted": False, "protection": "none", "redis_commands": 4,
                          "redis_resp_version": 3}
    rows = facts.rows["credentials"]
    assert [(r["mechanism"], r["username"], r["secret_in_clear"], r["secret_length"], r["accepted"]) for r in rows] == [
        ("auth_command", None, True, len(SECRET), False), ("auth_command", "alice", True, len(SECRET), True),
        ("hello_auth", "bob", True, len(SECRET), True)]
    assert len({r["secret_fingerprint"] for r in rows}) == 1  # one secret, one fingerprint within a run
    assert SECRET.decode() not in repr(facts.rows)


def test_inline_commands_and_missing_replies():
    facts = dissector().dissect(flow(b"AUTH " + SECRET + b"\r\nPING\r\n", b""))
    (row,) = facts.rows["credentials"]
    assert (row["mechanism"], row["accepted"], facts.flow["redis_commands"]) == ("auth_command", None, 2)
    assert dissector().probe(flow(b"PING\r\n", b"+PONG\r\n"))


def test_parsers():
    command = resp(b"SET", b"a", b"b\r\nc")
    assert read_command(command + b"junk", 0) == ([b"SET", b"a", b"b\r\nc"], len(command))
    assert read_command(b"*2\r\n$3\r\nGET\r\n", 0) is None  # cut
    assert skip_value(b"*2\r\n*1\r\n:1\r\n$-1\r\n+x\r\n", 0) == (0x2A, 17)  # +x is the next value
    assert skip_value(b"|1\r\n+a\r\n+b\r\n:5\r\n", 0) == (0x7C, 16)  # an attribute, then its value
    assert skip_value(b"?x\r\n", 0) is None
    assert skip_value(b"*1\r\n" * 100 + b":1\r\n", 0) is None  # deeper than the bound


def test_probe_does_not_take_others():
    d = dissector()
    assert not d.probe(flow(b"GET / HTTP/1.1\r\n\r\n", b"HTTP/1.1 200 OK\r\n"))
    assert not d.probe(flow(b"a1 LOGIN x y\r\n", b"* OK\r\n"))
    assert not d.probe(flow(b"AUTH TLS\r\n", b"220 ftp\r\n"))  # FTP's AUTH is answered by a reply code
    assert not d.probe(flow(b"AUTH PLAIN\r\n", b"+OK POP3 ready\r\n+ \r\n"))  # POP3: a greeting with text
    assert not d.probe(flow(b"PING\r\n", b"+OKAY\r\n"))
    assert d.probe(flow(b"AUTH x\r\n", b"-WRONGPASS invalid username-password pair\r\n"))
    assert not d.probe(flow(b"*x\r\n", b""))


def test_hostile_input_never_raises_and_is_bounded():
    d = dissector()
    clients = [b"*99999999\r\n", b"*3\r\n$-5\r\n", resp(b"PING") * 20_000, b"$" * 70_000, b"\r\n" * 40_000,
               resp(b"HELLO", b"3", b"AUTH"), resp(b"AUTH", b"a", b"b", b"c")]
    servers = [b"*100000\r\n" + b":1\r\n" * 20_000, b"~1\r\n" * 30_000, b"$999999\r\nab", b"+OK\r\n" * 20_000]
    for client in clients:
        for server in servers:
            started = time.perf_counter()
            facts = d.dissect(flow(client, server))
            assert time.perf_counter() - started < 0.5
            assert facts.flow["app_protocol"] == "redis"


def test_corpus_capture():
    path = CORPUS / "ndpi" / "resp.pcap"
    if not path.is_file():
        pytest.skip("corpus capture ndpi/resp.pcap not present (../shared/corpus)")
    result = analyzer.analyze([str(path)], on_problem=lambda p: None)
    (row,) = result.flows.itertuples()
    # COMMAND, PING, SET, GET (the tag "redis_auth" comes from "auth" inside the COMMAND reply: no AUTH is sent)
    assert (row.app_protocol, row.encrypted, row.redis_commands) == ("redis", False, 4)
    assert result.credentials.empty
