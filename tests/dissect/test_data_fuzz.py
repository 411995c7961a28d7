"""The data-store, broker and remaining STARTTLS dissectors never raise and stay bounded on damaged
sessions: real-shaped sessions of each protocol (taken from their unit tests' builders) cut at random
points, with random bytes flipped, inserted and deleted (seeded), as test_plaintext_fuzz.py does for
the mail and file protocols."""

from __future__ import annotations

import base64
import random
import struct
import time

import pytest
from support.fuzz_helpers import damage
from support.fuzz_seeds import amqp_session, mongo_session

from analyzer.dissect.amqp import AMQPDissector
from analyzer.dissect.base import DissectContext, Facts, FlowPayload, StreamPrefix
from analyzer.dissect.credentials import CREDENTIALS
from analyzer.dissect.memcached import MemcachedDissector
from analyzer.dissect.mongodb import MongoDBDissector
from analyzer.dissect.mqtt import MQTTDissector
from analyzer.dissect.mysql import MySQLDissector
from analyzer.dissect.nntp import NNTPDissector
from analyzer.dissect.postgresql import PostgreSQLDissector
from analyzer.dissect.redis import RedisDissector
from analyzer.dissect.xmpp import XMPPDissector


def _pg() -> tuple[bytes, bytes]:
    body = b"user\0alice\0database\0db\0\0"
    startup = struct.pack(">II", 8 + len(body), 0x00030000) + body
    client = b"\x00\x00\x00\x08\x04\xd2\x16\x2f" + startup + b"p\x00\x00\x00\x0bsecret\0" + b"X\x00\x00\x00\x04"
    server = (b"N" + b"R\x00\x00\x00\x08\x00\x00\x00\x03" + b"R\x00\x00\x00\x08\x00\x00\x00\x00"
              + b"S\x00\x00\x00\x16server_version\x0016\0" + b"Z\x00\x00\x00\x05I")
    return client, server


def _mysql() -> tuple[bytes, bytes]:
    greeting = (b"\x0a10.11.6-MariaDB\0" + b"\x07\0\0\0abcdefgh\0" + b"\xfe\xff\x21\x02\x00\xff\x81\x15"
                + b"\0" * 10 + b"ijklmnopqrst\0mysql_native_password\0")
    response = (struct.pack("<IIB", 0x0008A20A, 1 << 24, 33) + b"\0" * 23 + b"alice\0\x14" + bytes(20)
                + b"db\0mysql_native_password\0")
    switch = b"\xfemysql_clear_password\0"
    return (len(response).to_bytes(3, "little") + b"\x01" + response + b"\x07\0\0\x03secret\0",
            len(greeting).to_bytes(3, "little") + b"\x00" + greeting + len(switch).to_bytes(3, "little") + b"\x02"
            + switch + b"\x07\0\0\x04\x00\x00\x00\x02\x00\x00\x00")


PLAIN = base64.b64encode(b"\0alice\0secret")
SESSIONS = {
    "postgresql": _pg(),
    "mysql": _mysql(),
    "redis": (b"*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n*4\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n$1\r\na\r\nPING\r\n",
              b"+OK\r\n%1\r\n$1\r\na\r\n*2\r\n:1\r\n$-1\r\n+PONG\r\n"),
    "mqtt": (b"\x10\x26\x00\x04MQTT\x04\xc2\x00\x3c\x00\x08sensor-1\x00\x05alice\x00\x06secret\x00\x00\x00\x00\x00",
             b"\x20\x02\x00\x00"),
    "mongodb": mongo_session(),
    "amqp": amqp_session(),
    # binary (SASL list, SASL auth PLAIN, get); the text protocol has no credentials
    "memcached": (b"\x80\x20" + b"\0" * 22 + b"\x80\x21\x00\x05\x00\x00\x00\x00\x00\x00\x00\x12\x00\x00\x00\x01"
                  + b"\0" * 8 + b"PLAIN\0alice\0secret" + b"\x80\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01"
                  + b"\0" * 12 + b"k",
                  b"\x81\x20" + b"\0" * 6 + b"\x00\x00\x00\x05" + b"\0" * 12 + b"PLAIN" + b"\x81\x21" + b"\0" * 10
                  + b"\x00\x00\x00\x01" + b"\0" * 8),
    "xmpp": (b"<?xml version='1.0'?><stream:stream to='x' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/"
             b"streams'><auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + PLAIN + b"</auth>"
             b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\x16\x03\x01",
             b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'><stream:features><starttls xmlns='urn:"
             b"ietf:params:xml:ns:xmpp-tls'><required/></starttls><mechanisms><mechanism>PLAIN</mechanism></mechanisms>"
             b"</stream:features><success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"
             b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
    "nntp": (b"CAPABILITIES\r\nAUTHINFO USER alice\r\nAUTHINFO PASS secret\r\nAUTHINFO SASL PLAIN " + PLAIN
             + b"\r\nLIST\r\nPOST\r\nSubject: x\r\n\r\nhi\r\n.\r\nSTARTTLS\r\n\x16\x03\x01",
             b"200 news ready\r\n101 caps\r\nSTARTTLS\r\n.\r\n381 more\r\n281 ok\r\n281 ok\r\n215 list\r\ng 1 1 y\r\n"
             b".\r\n340 go\r\n240 ok\r\n382 go\r\n"),
}
DISSECTORS = {"postgresql": PostgreSQLDissector, "mysql": MySQLDissector, "redis": RedisDissector,
              "mqtt": MQTTDissector, "mongodb": MongoDBDissector, "amqp": AMQPDissector,
              "memcached": MemcachedDissector, "xmpp": XMPPDissector, "nntp": NNTPDissector}


_INSERTS = [b"\r\n", b"\xff\xff\xff\x7f", b"\x00", b"*9\r\n", b"<", b"/>", b"\xce"]


def _damage(rng: random.Random, data: bytes) -> bytes:
    return damage(rng, data, _INSERTS)


def _flow(client: bytes, server: bytes) -> FlowPayload:
    return FlowPayload(uid="C", transport="tcp", client_ip="a", server_ip="b", client_port=1, server_port=1,
                       ts_start=0.0, to_server=StreamPrefix(client), to_client=StreamPrefix(server))


@pytest.mark.parametrize("name", sorted(SESSIONS))
def test_damaged_sessions_never_raise(name: str):
    rng = random.Random(f"data-{name}")
    d = DISSECTORS[name]().for_run(DissectContext(frames=frozenset({"credentials"})))
    client, server = SESSIONS[name]
    intact = d.dissect(_flow(client, server))
    assert d.probe(_flow(client, server))
    assert intact.flow["app_protocol"] == name and intact.rows.get("credentials")  # the session is read whole
    worst = 0.0
    for _ in range(1500):
        fp = _flow(_damage(rng, client), _damage(rng, server))
        d.probe(fp)
        started = time.perf_counter()
        facts = d.dissect(fp)
        worst = max(worst, time.perf_counter() - started)
        assert isinstance(facts, Facts)
        for row in facts.rows.get("credentials", []):
            assert set(row) | {"uid"} == set(CREDENTIALS.schema)
            assert row["secret_fingerprint"] is None or len(str(row["secret_fingerprint"])) == 64
    assert worst < 0.05
