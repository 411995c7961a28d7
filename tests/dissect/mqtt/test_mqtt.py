"""MQTT dissector (analyzer/dissect/mqtt.py): CONNECT / CONNACK of 3.1, 3.1.1 and 5.0, credentials,
hostile input, the corpus captures. tshark agreement: tests/oracle/test_data_oracle.py."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest
from support.flow_helpers import tcp_flow

import analyzer
from analyzer.dissect.base import DissectContext, FlowPayload
from analyzer.dissect.mqtt import MQTTDissector, parse_connect, remaining_length

CORPUS = Path(__file__).resolve().parents[4] / "shared" / "corpus" / "pcaps"
SECRET = b"s3cret-mqtt"


def s(raw: bytes) -> bytes:
    return struct.pack(">H", len(raw)) + raw


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def connect(level: int = 4, client_id: bytes = b"sensor-1", user: bytes | None = None, password: bytes | None = None,
            will: bool = False) -> bytes:
    flags = 0x02 | (0x80 if user is not None else 0) | (0x40 if password is not None else 0) | (0x04 if will else 0)
    name = s(b"MQIsdp") if level == 3 else s(b"MQTT")
    body = name + bytes([level, flags]) + b"\x00\x3c" + (b"\x03\x21\x00\x0a" if level == 5 else b"")
    body += s(client_id)
    if will:
        body += (b"\x00" if level == 5 else b"") + s(b"dead") + s(b"bye")
    body += (s(user) if user is not None else b"") + (s(password) if password is not None else b"")
    return b"\x10" + varint(len(body)) + body


def flow(client: bytes, server: bytes, port: int = 1883) -> FlowPayload:
    return tcp_flow(client, server, port)


def dissector() -> MQTTDissector:
    return MQTTDissector().for_run(DissectContext(frames=frozenset({"credentials"})))


@pytest.mark.parametrize(("level", "version", "connack", "accepted"), [
    (3, "3.1", b"\x20\x02\x00\x00", True), (4, "3.1.1", b"\x20\x02\x00\x04", False),
    (5, "5.0", b"\x20\x03\x00\x00\x00", True)])
def test_connect_with_password(level: int, version: str, connack: bytes, accepted: bool):
    client = connect(level, user=b"alice", password=SECRET, will=True)
    d = dissector()
    assert d.probe(flow(client, connack, port=11883))
    facts = d.dissect(flow(client, connack))
    assert facts.flow == {"app_protocol": "mqtt", "encrypted": False, "protection": "none", "mqtt_version": version,
                          "mqtt_client_id": "sensor-1", "mqtt_connack_code": connack[3]}
    (row,) = facts.rows["credentials"]
    assert (row["protocol"], row["mechanism"], row["username"], row["secret_in_clear"], row["secret_length"],
            row["accepted"]) == ("mqtt", "connect_password", "alice", True, len(SECRET), accepted)
    assert SECRET.decode() not in repr(facts.rows)


def test_anonymous_and_username_only():
    assert "credentials" not in dissector().dissect(flow(connect(), b"\x20\x02\x00\x00")).rows
    (row,) = dissector().dissect(flow(connect(user=b"bob"), b"")).rows["credentials"]
    assert (row["mechanism"], row["username"], row["secret_in_clear"], row["accepted"]) == (
        "connect_username", "bob", False, None)


def test_parsers_and_probe():
    assert remaining_length(b"\x10\xc1\x02", 1) == (321, 3)
    assert remaining_length(b"\x10\xff\xff\xff\xff\x01", 1) is None
    assert parse_connect(b"\x00\x04MQTT\x04\xc2") is None  # cut before the keep-alive
    assert parse_connect(b"\x00\x04MQTT\x04\xc2\x00\x00") == {"level": 4, "flags": 0xC2}  # cut before the client id
    assert parse_connect(b"\x00\x04HTTP\x04\xc2\x00\x00") is None
    d = dissector()
    assert not d.probe(flow(b"\x10\x05hello", b""))
    assert not d.probe(flow(b"\x16\x03\x01\x00\x10", b""))


def test_hostile_input_never_raises_and_is_bounded():
    d = dissector()
    clients = [b"\x10\xff\xff\xff\x7f" + s(b"MQTT") + b"\x05\xff\x00\x00\xff\xff\xff\xff\x0f",
               connect(5)[:12], b"\x10\x0c" + s(b"MQTT") + b"\x04\xc6\x00\x00\xff\xff", b"\x10" + b"\xff" * 60_000,
               connect(user=b"u" * 65_000)]
    for client in clients:
        started = time.perf_counter()
        facts = d.dissect(flow(client, b"\x20\xff"))
        assert time.perf_counter() - started < 0.5
        assert facts.flow["app_protocol"] == "mqtt"


@pytest.mark.parametrize(("name", "versions", "users"), [
    ("zeek/mqtt.pcap", ["3.1", "3.1"], []),
    ("suricata-verify/mqtt311-pub-userpass/input.pcap", ["3.1.1"], ["user"]),
])
def test_corpus_captures(name: str, versions: list[str], users: list[str]):
    path = CORPUS / name
    if not path.is_file():
        pytest.skip(f"corpus capture {name} not present (../shared/corpus)")
    result = analyzer.analyze([str(path)], on_problem=lambda p: None)
    assert set(result.flows["app_protocol"]) == {"mqtt"}
    assert sorted(result.flows["mqtt_version"]) == versions
    assert list(result.credentials["username"]) == users
