"""memcached dissector (analyzer/dissect/memcached.py): text commands with data blocks, the VERSION
reply, binary SASL PLAIN authentication, hostile input. The bundled capture is checked in
tests/captures/test_data_captures.py."""

from __future__ import annotations

import struct
import time

from support.flow_helpers import tcp_flow

from analyzer.dissect.base import DissectContext, FlowPayload
from analyzer.dissect.memcached import MemcachedDissector

SECRET = b"s3cret-memcached"


def request(opcode: int, key: bytes = b"", value: bytes = b"", extras: bytes = b"", opaque: int = 0) -> bytes:
    body = extras + key + value
    return struct.pack(">BBHBBHIIQ", 0x80, opcode, len(key), len(extras), 0, 0, len(body), opaque, 0) + body


def response(opcode: int, status: int, value: bytes = b"", opaque: int = 0) -> bytes:
    return struct.pack(">BBHBBHIIQ", 0x81, opcode, 0, 0, 0, status, len(value), opaque, 0) + value


def flow(client: bytes, server: bytes, port: int = 11211) -> FlowPayload:
    return tcp_flow(client, server, port)


def dissector() -> MemcachedDissector:
    return MemcachedDissector().for_run(DissectContext(frames=frozenset({"credentials"})))


def test_text_session_skips_data_blocks():
    # version, set (its 12-byte block "get x\r\nset y" looks like commands), stats, ms (block "abc"), get, quit
    client = (b"version\r\nset k 0 0 12\r\nget x\r\nset y\r\nstats\r\n"
              b"ms m 3 T0\r\nabc\r\nget k\r\nquit\r\n")
    server = b"VERSION 1.6.18\r\nSTORED\r\nHD\r\nVALUE k 0 12\r\nget x\r\nset y\r\nEND\r\n"
    d = dissector()
    assert d.probe(flow(client, server, port=9999))
    facts = d.dissect(flow(client, server))
    assert facts.flow == {"app_protocol": "memcached", "encrypted": False, "protection": "none",
                          "memcached_protocol": "text", "memcached_commands": 6, "memcached_version": "1.6.18"}
    assert "anomalies" not in facts.rows


def test_binary_sasl_plain():
    client = (request(0x20, opaque=1) + request(0x21, b"PLAIN", b"\0alice\0" + SECRET, opaque=2)
              + request(0x21, b"PLAIN", b"\0alice\0wrong", opaque=3) + request(0x0B, opaque=4))
    server = (response(0x20, 0, b"PLAIN", 1) + response(0x21, 0, b"Authenticated", 2) + response(0x21, 0x20, b"", 3)
              + response(0x0B, 0, b"1.6.18", 4))
    d = dissector()
    assert d.probe(flow(client, server))
    facts = d.dissect(flow(client, server))
    assert facts.flow["memcached_protocol"] == "binary" and facts.flow["memcached_commands"] == 4
    rows = facts.rows["credentials"]
    assert [(r["protocol"], r["mechanism"], r["username"], r["secret_in_clear"], r["secret_length"], r["accepted"])
            for r in rows] == [("memcached", "plain", "alice", True, len(SECRET), True),
                               ("memcached", "plain", "alice", True, 5, False)]
    assert SECRET.decode() not in repr(facts.rows)


def test_probe():
    d = dissector()
    assert d.probe(flow(b"stats\r\n", b""))
    assert not d.probe(flow(b"GET / HTTP/1.1\r\n", b"HTTP/1.1 200 OK\r\n"))
    assert not d.probe(flow(b"get /index.html\r\n", b"<html>"))  # a reply that is not memcached's
    assert not d.probe(flow(b"getaway\r\n", b""))
    assert not d.probe(flow(b"\x80\xff" + b"\0" * 30, b""))
    assert not d.probe(flow(request(0x00, b"k")[:20], b""))


def test_hostile_input_never_raises_and_is_bounded():
    d = dissector()
    clients = [b"set k 0 0 99999999999\r\n", b"set k 0 0\r\n" * 100, b"ms\r\n", b"get " + b"k" * 100_000,
               b"get k\r\n" * 30_000, request(0x21, b"PLAIN", b"\0" * 60_000),
               struct.pack(">BBHBBHIIQ", 0x80, 0x21, 0xFFFF, 0xFF, 0, 0, 5, 0, 0) + b"x" * 10, request(0x0A) * 10_000]
    servers = [b"VERSION " + b"9" * 10_000, response(0x21, 0) * 10_000, b"\x81" * 100, b""]
    for client in clients:
        for server in servers:
            started = time.perf_counter()
            facts = d.dissect(flow(client, server))
            assert time.perf_counter() - started < 0.5
            assert facts.flow["app_protocol"] == "memcached"
