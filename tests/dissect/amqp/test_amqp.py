"""AMQP dissector (analyzer/dissect/amqp.py): 0-9-1 Connection.Start / Start-Ok (PLAIN, AMQPLAIN) /
Tune / Close / Open, the 1.0 TLS header hand-over, field tables, hostile input. No capture: a
RabbitMQ broker (Erlang) is too heavy to install here and the corpus has none
(tests/oracle/ORACLE_DATA_NOTES.md)."""

from __future__ import annotations

import struct
import time

from support.flow_helpers import tcp_flow

from analyzer.dissect.amqp import AMQPDissector, field_table, frames_of
from analyzer.dissect.base import DissectContext, FlowPayload

SECRET = b"s3cret-amqp"
HEADER = b"AMQP\x00\x00\x09\x01"


def longstr(raw: bytes) -> bytes:
    return struct.pack(">I", len(raw)) + raw


def shortstr(raw: bytes) -> bytes:
    return bytes([len(raw)]) + raw


def table(**entries: bytes | int) -> bytes:
    body = b""
    for name, value in entries.items():
        typed = b"S" + longstr(value) if isinstance(value, bytes) else b"I" + struct.pack(">i", value)
        body += shortstr(name.encode()) + typed
    return body


def method(cls: int, meth: int, args: bytes, channel: int = 0) -> bytes:
    payload = struct.pack(">HH", cls, meth) + args
    return struct.pack(">BHI", 1, channel, len(payload)) + payload + b"\xce"


START = method(10, 10, b"\x00\x09" + longstr(table(product=b"RabbitMQ", version=b"3.12.1", capabilities=7))
               + longstr(b"PLAIN AMQPLAIN") + longstr(b"en_US"))
TUNE = method(10, 30, struct.pack(">HIH", 2047, 131072, 60))
CLOSE = method(10, 50, struct.pack(">H", 403) + shortstr(b"ACCESS_REFUSED - Login was refused") + b"\0\0\0\0")


def start_ok(mechanism: bytes, response: bytes) -> bytes:
    args = longstr(table(product=b"pika")) + shortstr(mechanism) + longstr(response) + shortstr(b"en_US")
    return method(10, 11, args)


def flow(client: bytes, server: bytes, port: int = 5672) -> FlowPayload:
    return tcp_flow(client, server, port)


def dissector() -> AMQPDissector:
    return AMQPDissector().for_run(DissectContext(frames=frozenset({"credentials"})))


def test_plain_login_accepted_with_vhost():
    client = HEADER + start_ok(b"PLAIN", b"\0alice\0" + SECRET) + method(10, 31, b"\0" * 8) + method(
        10, 40, shortstr(b"/shop") + b"\0\0")
    d = dissector()
    assert d.probe(flow(client, START, port=15672))
    facts = d.dissect(flow(client, START + TUNE))
    assert facts.flow == {"app_protocol": "amqp", "amqp_version": "0-9-1", "amqp_virtual_host": "/shop",
                          "amqp_server_product": "RabbitMQ 3.12.1", "amqp_mechanisms": "PLAIN AMQPLAIN",
                          "encrypted": False, "protection": "none"}
    (row,) = facts.rows["credentials"]
    assert (row["protocol"], row["mechanism"], row["username"], row["secret_in_clear"], row["secret_length"],
            row["accepted"]) == ("amqp", "plain", "alice", True, len(SECRET), True)
    assert SECRET.decode() not in repr(facts.rows)


def test_amqplain_refused():
    client = HEADER + start_ok(b"AMQPLAIN", table(LOGIN=b"bob", PASSWORD=SECRET))
    (row,) = dissector().dissect(flow(client, START + CLOSE)).rows["credentials"]
    assert (row["mechanism"], row["username"], row["secret_in_clear"], row["secret_length"], row["accepted"]) == (
        "amqplain", "bob", True, len(SECRET), False)


def test_amqp_1_0_tls_header_hands_over():
    tls = b"AMQP\x02\x01\x00\x00"
    facts = dissector().dissect(flow(tls + b"\x16\x03\x01\x00\x05hello", tls + b"\x16\x03\x03\x00\x02hi"))
    assert facts.handover is not None and (facts.handover.to_server_offset, facts.handover.to_client_offset) == (8, 8)
    assert facts.flow == {"app_protocol": "amqp", "amqp_version": "1.0", "starttls": "completed",
                          "protection": "starttls"}
    refused = dissector().dissect(flow(tls, b"AMQP\x00\x01\x00\x00")).flow
    assert (refused["starttls"], refused["encrypted"]) == ("requested_refused", False)
    plain = dissector().dissect(flow(b"AMQP\x00\x01\x00\x00", b"AMQP\x00\x01\x00\x00")).flow
    assert plain == {"app_protocol": "amqp", "amqp_version": "1.0", "encrypted": False, "protection": "none"}


def test_parsers_and_probe():
    assert field_table(table(a=b"x", n=5, b=b"y")) == {"a": b"x", "n": None, "b": b"y"}
    assert field_table(shortstr(b"q") + b"?" + b"junk") == {}
    assert frames_of(TUNE + b"\x01\x00", 0) == [(1, TUNE[7:-1])]
    assert frames_of(TUNE[:-1] + b"\x00", 0) == []  # no frame-end octet
    d = dissector()
    assert not d.probe(flow(b"AMQP\x09\x09\x09\x09", b""))
    assert not d.probe(flow(b"GET / HTTP/1.1\r\n", b""))


def test_hostile_input_never_raises_and_is_bounded():
    d = dissector()
    clients = [HEADER + method(10, 11, b"\xff" * 50), HEADER + method(10, 11, longstr(b"\x05aaaaaS\xff\xff\xff\xff")),
               HEADER + b"\x01\x00\x00\xff\xff\xff\xff" + b"\0" * 100, HEADER + TUNE * 5000,
               HEADER + start_ok(b"PLAIN", b"\0" * 70_000)]
    servers = [START[:20], method(10, 10, b"\x00\x09" + b"\xff" * 40_000), CLOSE * 5000, b""]
    for client in clients:
        for server in servers:
            started = time.perf_counter()
            facts = d.dissect(flow(client, server))
            assert time.perf_counter() - started < 0.5
            assert facts.flow["app_protocol"] == "amqp"
