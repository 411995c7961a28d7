"""MongoDB dissector (analyzer/dissect/mongodb.py): OP_MSG and OP_QUERY handshakes, saslStart
(SCRAM, PLAIN) and speculative authentication, BSON reading, hostile input. No capture: no MongoDB
server is packaged in Debian 12 and the corpus has none (see tests/oracle/ORACLE_DATA_NOTES.md)."""

from __future__ import annotations

import struct
import time

from support.flow_helpers import tcp_flow

from analyzer.dissect.base import DissectContext, FlowPayload
from analyzer.dissect.mongodb import MongoDBDissector, bson_fields, messages

SECRET = b"s3cret-mongodb"


def bson(**fields: object) -> bytes:
    """A tiny BSON encoder (strings, ints, bools, bytes as binary subtype 0, dicts)."""
    body = b""
    for name, value in fields.items():
        key = name.encode() + b"\0"
        if isinstance(value, bool):
            body += b"\x08" + key + (b"\x01" if value else b"\x00")
        elif isinstance(value, int):
            body += b"\x10" + key + struct.pack("<i", value)
        elif isinstance(value, str):
            raw = value.encode() + b"\0"
            body += b"\x02" + key + struct.pack("<i", len(raw)) + raw
        elif isinstance(value, bytes):
            body += b"\x05" + key + struct.pack("<i", len(value)) + b"\x00" + value
        elif isinstance(value, dict):
            body += b"\x03" + key + bson(**value)
    return struct.pack("<i", len(body) + 5) + body + b"\0"


def op_msg(request: int, doc: bytes, response: int = 0) -> bytes:
    body = struct.pack("<I", 0) + b"\x00" + doc
    return struct.pack("<iiii", 16 + len(body), request, response, 2013) + body


def op_query(request: int, doc: bytes) -> bytes:
    body = struct.pack("<i", 0) + b"admin.$cmd\0" + struct.pack("<ii", 0, -1) + doc
    return struct.pack("<iiii", 16 + len(body), request, 0, 2004) + body


def op_reply(response: int, doc: bytes) -> bytes:
    body = struct.pack("<iqii", 8, 0, 0, 1) + doc
    return struct.pack("<iiii", 16 + len(body), 99, response, 1) + body


CLIENT = {"driver": {"name": "PyMongo", "version": "4.6.1"}, "application": {"name": "inventory"}}


def flow(client: bytes, server: bytes, port: int = 27017) -> FlowPayload:
    return tcp_flow(client, server, port)


def dissector() -> MongoDBDissector:
    return MongoDBDissector().for_run(DissectContext(frames=frozenset({"credentials"})))


def test_legacy_ismaster_then_scram():
    client = (op_query(1, bson(isMaster=1, client=CLIENT))
              + op_msg(2, bson(saslStart=1, mechanism="SCRAM-SHA-256", payload=b"n,,n=alice,r=abc", **{"$db": "admin"}))
              + op_msg(3, bson(saslContinue=1, conversationId=1, payload=b"c=biws,r=abc,p=x")))
    server = (op_reply(1, bson(ismaster=True, ok=1)) + op_msg(10, bson(conversationId=1, done=False, ok=1), 2)
              + op_msg(11, bson(conversationId=1, done=True, ok=1), 3))
    d = dissector()
    assert d.probe(flow(client, server, port=4000))
    facts = d.dissect(flow(client, server))
    assert facts.flow == {"app_protocol": "mongodb", "encrypted": False, "protection": "none",
                          "mongodb_first_command": "isMaster", "mongodb_driver": "PyMongo 4.6.1",
                          "mongodb_application": "inventory", "mongodb_auth_mechanism": "SCRAM-SHA-256"}
    (row,) = facts.rows["credentials"]
    assert (row["protocol"], row["mechanism"], row["username"], row["secret_in_clear"], row["accepted"]) == (
        "mongodb", "scram-sha-256", "alice", False, True)


def test_hello_with_speculative_plain_is_a_secret_in_clear():
    sasl = {"saslStart": 1, "mechanism": "PLAIN", "payload": b"\0bob\0" + SECRET, "db": "$external"}
    client = op_msg(1, bson(hello=1, client=CLIENT, speculativeAuthenticate=sasl))
    server = op_msg(5, bson(isWritablePrimary=True, ok=0, errmsg="Authentication failed."), 1)
    facts = dissector().dissect(flow(client, server))
    assert facts.flow["mongodb_first_command"] == "hello" and facts.flow["mongodb_auth_mechanism"] == "PLAIN"
    (row,) = facts.rows["credentials"]
    assert (row["mechanism"], row["username"], row["secret_in_clear"], row["secret_length"], row["accepted"]) == (
        "plain", "bob", True, len(SECRET), False)
    assert SECRET.decode() not in repr(facts.rows)


def test_no_authentication_no_row():
    facts = dissector().dissect(flow(op_msg(1, bson(ping=1, **{"$db": "admin"})), op_msg(2, bson(ok=1), 1)))
    assert facts.flow["mongodb_first_command"] == "ping" and "credentials" not in facts.rows


def test_bson_reader():
    doc = bson(a="x", b=5, c=True, d=b"\x01\x02", e={"f": "g", "h": {"i": 1}})
    assert bson_fields(doc, 1) == {"a": "x", "b": 5, "c": True, "d": b"\x01\x02", "e": {"f": "g", "h": None}}
    assert bson_fields(doc[:19]) == {"a": "x"}  # cut inside b: what was whole is kept
    assert bson_fields(b"\x05\x00\x00\x00") == {}
    assert bson_fields(struct.pack("<i", 30) + b"\x02a\0" + struct.pack("<i", -5) + b"x" * 20) == {}
    assert messages(op_msg(7, bson(ping=1)))[0][:3] == (7, 0, 2013)


def test_probe():
    d = dissector()
    assert not d.probe(flow(b"\x16\x03\x01\x02\x00" + b"\0" * 20, b""))
    assert not d.probe(flow(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b""))
    assert not d.probe(flow(struct.pack("<iiii", 10, 1, 0, 2013), b""))  # shorter than a header and body


def test_hostile_input_never_raises_and_is_bounded():
    d = dissector()
    deep = bson(x=1)
    for _ in range(200):
        deep = struct.pack("<i", len(deep) + 8) + b"\x03a\0" + deep + b"\0"
    clients = [op_msg(1, deep), op_msg(1, b"\xff" * 60_000), op_query(1, b"\x00" * 5000) * 40,
               op_msg(1, bson(saslStart=1, mechanism="PLAIN", payload=b"\0" * 10)) * 100,
               struct.pack("<iiii", 48_000_000, 1, 0, 2013) + b"\x00" * 100,
               op_msg(1, struct.pack("<i", 2 ** 31 - 1) + b"\x02" + b"a" * 50_000)]
    servers = [op_reply(1, b"\xff" * 100) * 100, b"", op_msg(1, deep, 1)]
    for client in clients:
        for server in servers:
            started = time.perf_counter()
            facts = d.dissect(flow(client, server))
            assert time.perf_counter() - started < 0.5
            assert facts.flow["app_protocol"] == "mongodb"
