"""MySQL / MariaDB dissector (analyzer/dissect/mysql.py): crafted connection phases (HandshakeV10,
SSLRequest, HandshakeResponse41/320, AuthSwitchRequest), hostile input, the corpus captures.
tshark agreement: tests/oracle/test_data_oracle.py."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pandas as pd
import pytest
from support.flow_helpers import tcp_flow

import analyzer
from analyzer.dissect.base import DissectContext, FlowPayload
from analyzer.dissect.mysql import MySQLDissector, packets, parse_greeting, parse_response

CORPUS = Path(__file__).resolve().parents[4] / "shared" / "corpus" / "pcaps"
SECRET = b"s3cret-mysql"
TLS_HELLO = b"\x16\x03\x01\x00\x05hello"
CLIENT_SSL, PROTO41, SECURE, PLUGIN, WITH_DB = 0x800, 0x200, 0x8000, 0x80000, 0x8


def packet(seq: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([seq]) + payload


def greeting(version: bytes = b"10.11.6-MariaDB-0+deb12u1", ssl: bool = True,
             plugin: bytes = b"mysql_native_password") -> bytes:
    caps = 0xF7FE | (CLIENT_SSL if ssl else 0) | ((PLUGIN | 0x3F0000) << 0)
    caps = (caps & ~CLIENT_SSL) | (CLIENT_SSL if ssl else 0)
    body = (b"\x0a" + version + b"\0" + struct.pack("<I", 7) + b"abcdefgh" + b"\0" + struct.pack("<H", caps & 0xFFFF)
            + b"\x21" + b"\x02\x00" + struct.pack("<H", caps >> 16) + b"\x15" + b"\0" * 10 + b"ijklmnopqrst\0"
            + plugin + b"\0")
    return packet(0, body)


def response(user: bytes, auth: bytes, *, plugin: bytes = b"mysql_native_password", db: bytes | None = None) -> bytes:
    caps = PROTO41 | SECURE | PLUGIN | (WITH_DB if db is not None else 0)
    body = struct.pack("<IIB", caps, 1 << 24, 33) + b"\0" * 23 + user + b"\0" + bytes([len(auth)]) + auth
    body += (db + b"\0" if db is not None else b"") + plugin + b"\0"
    return packet(1, body)


def ssl_request() -> bytes:
    return packet(1, struct.pack("<IIB", PROTO41 | SECURE | PLUGIN | CLIENT_SSL, 1 << 24, 33) + b"\0" * 23)


OK = b"\x00\x00\x00\x02\x00\x00\x00"


def flow(client: bytes, server: bytes, port: int = 3306) -> FlowPayload:
    return tcp_flow(client, server, port)


def dissector() -> MySQLDissector:
    return MySQLDissector().for_run(DissectContext(frames=frozenset({"credentials"})))


def test_ssl_request_hands_over_after_its_packet():
    hello = greeting()
    client = ssl_request() + TLS_HELLO
    d = dissector()
    assert d.probe(flow(client, hello, port=13306))
    facts = d.dissect(flow(client, hello + b"\x16\x03\x03\x00\x02hi"))
    assert facts.handover is not None
    assert (facts.handover.to_server_offset, facts.handover.to_client_offset) == (36, len(hello))
    assert facts.flow == {"app_protocol": "mysql", "mysql_server_version": "10.11.6-MariaDB-0+deb12u1",
                          "starttls": "completed", "protection": "starttls"}


def test_native_password_in_the_clear_with_ssl_offered():
    client = response(b"alice", bytes(range(20)), db=b"shop")
    facts = dissector().dissect(flow(client, greeting() + packet(2, OK)))
    assert facts.flow == {"app_protocol": "mysql", "mysql_server_version": "10.11.6-MariaDB-0+deb12u1",
                          "starttls": "offered_not_used", "mysql_user": "alice", "mysql_database": "shop",
                          "mysql_auth_plugin": "mysql_native_password", "encrypted": False, "protection": "none"}
    (row,) = facts.rows["credentials"]
    assert (row["protocol"], row["mechanism"], row["username"], row["secret_in_clear"], row["secret_fingerprint"],
            row["accepted"]) == ("mysql", "mysql_native_password", "alice", False, None, True)
    refused = dissector().dissect(flow(client, greeting(ssl=False) + packet(2, b"\xff\x15\x04#28000denied")))
    assert refused.flow["starttls"] == "not_offered" and refused.rows["credentials"][0]["accepted"] is False


def test_clear_password_after_auth_switch_is_fingerprinted():
    client = response(b"bob", bytes(20)) + packet(3, SECRET + b"\0")
    server = greeting() + packet(2, b"\xfemysql_clear_password\0") + packet(4, OK)
    facts = dissector().dissect(flow(client, server))
    assert facts.flow["mysql_auth_plugin"] == "mysql_clear_password"
    (row,) = facts.rows["credentials"]
    assert (row["mechanism"], row["username"], row["secret_in_clear"], row["secret_length"], row["accepted"]) == (
        "mysql_clear_password", "bob", True, len(SECRET), True)
    assert len(str(row["secret_fingerprint"])) == 64 and SECRET.decode() not in repr(facts.rows)


def test_parsers_and_old_protocol():
    version, caps, plugin = parse_greeting(packets(greeting())[0][2]) or ("", 0, None)
    assert (version, bool(caps & CLIENT_SSL), plugin) == ("10.11.6-MariaDB-0+deb12u1", True, "mysql_native_password")
    assert parse_greeting(b"\x0a5.0") == ("5.0", 0, None)
    assert parse_greeting(b"\xff\x15\x04") is None
    old = parse_response(struct.pack("<H", 0x0001) + b"\0\0\x01" + b"carol\0" + b"12345678\0")
    assert (old["user"], old["auth"]) == (b"carol", b"12345678")
    assert parse_response(packets(ssl_request())[0][2])["ssl_request"] is True
    assert packets(b"\x05\x00\x00\x00abc") == []  # cut packet


def test_probe():
    d = dissector()
    assert d.probe(flow(b"", greeting(), port=4000))
    assert not d.probe(flow(b"", b"\x0a\x00\x00\x00\x0aSSH-"))
    assert not d.probe(flow(b"", b"HTTP/1.1 200 OK\r\n"))
    assert not d.probe(flow(b"\x16\x03\x01", b"\x16\x03\x03\x00\x30\x02"))


def test_hostile_input_never_raises_and_is_bounded():
    d = dissector()
    clients = [packet(1, b"\xff" * 40), packet(1, b"\x00\x82\xff\xff" + b"\0" * 28 + b"u" * 100_000),
               packet(1, b"\x00\xa2\x20\x00" + b"\0" * 28 + b"u\0\xfe"), bytes(range(256)) * 64, b"\xff\xff\xff\x01"]
    servers = [greeting() + packet(2, b"\xfe") * 5000, greeting() + packet(2, b"\x01\x04") * 5000,
               greeting()[:30], packet(0, b"\x0a9" + b"\xff" * 60_000)]
    for client in clients:
        for server in servers:
            started = time.perf_counter()
            facts = d.dissect(flow(client, server))
            assert time.perf_counter() - started < 0.5
            assert facts.flow["app_protocol"] == "mysql"


@pytest.mark.parametrize(("name", "expected"), [
    ("ndpi/mysql.pcapng", [("not_offered", False, "admin"), ("completed", True, None)]),
    ("zeek/mysql/tls-12-amazon-rds.pcap", [("completed", True, None)]),
    ("zeek/mysql/tls-13-amazon-rds.pcap", [("completed", True, None)]),
])
def test_corpus_captures(name: str, expected: list[tuple[str, bool, str | None]]):
    path = CORPUS / name
    if not path.is_file():
        pytest.skip(f"corpus capture {name} not present (../shared/corpus)")
    result = analyzer.analyze([str(path)], on_problem=lambda p: None)
    flows = result.flows.sort_values("ts_start")
    assert set(flows["app_protocol"]) == {"mysql"}
    got = [(r.starttls, bool(r.encrypted), None if pd.isna(r.mysql_user) else r.mysql_user) for r in flows.itertuples()]
    assert got == expected
    assert set(flows.loc[flows["encrypted"].astype(bool), "uid"]) == set(result.tls["uid"])
