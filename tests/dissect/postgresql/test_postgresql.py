"""PostgreSQL dissector (analyzer/dissect/postgresql.py): crafted byte streams per the protocol 3.0
message formats, hostile input, and the corpus captures. tshark agreement: tests/oracle/test_data_oracle.py."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest
from support.flow_helpers import tcp_flow

import analyzer
from analyzer.dissect.base import DissectContext, FlowPayload
from analyzer.dissect.postgresql import PostgreSQLDissector, parse_startup, read_messages

CORPUS = Path(__file__).resolve().parents[4] / "shared" / "corpus" / "pcaps"
SSL_REQUEST = b"\x00\x00\x00\x08\x04\xd2\x16\x2f"
GSS_REQUEST = b"\x00\x00\x00\x08\x04\xd2\x16\x30"
TLS_HELLO = b"\x16\x03\x01\x00\x05hello"
SECRET = b"s3cret-postgres"


def startup(**params: str) -> bytes:
    body = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in params.items()) + b"\0"
    return struct.pack(">II", 8 + len(body), 0x00030000) + body


def msg(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack(">I", 4 + len(body)) + body


def auth(code: int, extra: bytes = b"") -> bytes:
    return msg(b"R", struct.pack(">i", code) + extra)


OK_TAIL = msg(b"S", b"server_version\x0016.4\0") + msg(b"K", b"\0" * 8) + msg(b"Z", b"I")


def flow(client: bytes, server: bytes, port: int = 5432) -> FlowPayload:
    return tcp_flow(client, server, port)


def dissector() -> PostgreSQLDissector:
    return PostgreSQLDissector().for_run(DissectContext(frames=frozenset({"credentials"})))


def test_ssl_request_accepted_hands_over_after_the_s_byte():
    client = SSL_REQUEST + TLS_HELLO
    server = b"S" + b"\x16\x03\x03\x00\x02hi"
    d = dissector()
    assert d.probe(flow(client, server, port=15432))
    facts = d.dissect(flow(client, server))
    assert facts.handover is not None
    assert (facts.handover.to, facts.handover.to_server_offset, facts.handover.to_client_offset) == ("tls", 8, 1)
    assert facts.flow == {"app_protocol": "postgresql", "starttls": "completed", "protection": "starttls"}
    nothing = d.dissect(flow(SSL_REQUEST, b"S")).flow
    assert nothing["undecided_reason"] == "upgrade_not_seen" and "encrypted" not in nothing


def test_ssl_refused_then_cleartext_password_login():
    client = SSL_REQUEST + startup(user="alice", database="shop", application_name="psql") + msg(b"p", SECRET + b"\0")
    server = b"N" + auth(3) + auth(0) + OK_TAIL
    facts = dissector().dissect(flow(client, server))
    assert facts.flow == {"app_protocol": "postgresql", "starttls": "requested_refused", "postgresql_user": "alice",
                          "postgresql_database": "shop", "postgresql_application_name": "psql",
                          "postgresql_protocol": "3.0", "postgresql_auth": "cleartext",
                          "postgresql_server_version": "16.4", "encrypted": False, "protection": "none"}
    (row,) = facts.rows["credentials"]
    assert (row["protocol"], row["mechanism"], row["username"], row["secret_in_clear"], row["secret_length"],
            row["accepted"]) == ("postgresql", "cleartext", "alice", True, len(SECRET), True)
    assert SECRET.decode() not in repr(facts.rows) and SECRET.decode() not in repr(facts.flow)


def test_md5_and_scram_send_no_reusable_secret():
    client = startup(user="bob") + msg(b"p", b"md5" + b"0" * 32 + b"\0")
    server = auth(5, b"salt") + msg(b"E", b"SFATAL\0C28P01\0Mpassword authentication failed\0\0")
    facts = dissector().dissect(flow(client, server))
    assert facts.flow["postgresql_auth"] == "md5" and "starttls" not in facts.flow
    (row,) = facts.rows["credentials"]
    assert (row["mechanism"], row["username"], row["secret_in_clear"], row["secret_fingerprint"], row["accepted"]) == (
        "md5", "bob", False, None, False)
    first = b"SCRAM-SHA-256\0" + struct.pack(">i", 18) + b"n,,n=,r=abcdefghij"
    client = startup(user="carol") + msg(b"p", first) + msg(b"p", b"c=biws,r=x,p=proof")
    server = (auth(10, b"SCRAM-SHA-256\0\0") + auth(11, b"r=x,s=salt,i=4096") + auth(12, b"v=sig") + auth(0)
              + OK_TAIL)
    facts = dissector().dissect(flow(client, server))
    (row,) = facts.rows["credentials"]
    assert facts.flow["postgresql_auth"] == "scram-sha-256"
    assert (row["mechanism"], row["username"], row["secret_in_clear"], row["accepted"]) == (
        "scram-sha-256", "carol", False, True)


def test_trust_login_and_gssenc_and_cancel():
    facts = dissector().dissect(flow(startup(user="dave"), auth(0) + OK_TAIL))
    assert facts.flow["postgresql_auth"] == "none" and "credentials" not in facts.rows
    gss = dissector().dissect(flow(GSS_REQUEST + b"\x00\x00\x00\x20" + b"\x01" * 32, b"G")).flow
    assert gss == {"app_protocol": "postgresql", "protection": "gssapi", "encrypted": True}
    refused = dissector().dissect(flow(GSS_REQUEST + SSL_REQUEST + TLS_HELLO, b"NS")).flow
    assert refused["starttls"] == "completed" and refused["protection"] == "starttls"
    unanswered = dissector().dissect(flow(SSL_REQUEST, b"")).flow
    assert unanswered == {"app_protocol": "postgresql", "protection": "starttls",
                          "undecided_reason": "handshake_incomplete"}
    cancel = dissector().dissect(flow(b"\x00\x00\x00\x10\x04\xd2\x16\x2e" + b"\0" * 8, b"")).flow
    assert cancel == {"app_protocol": "postgresql", "postgresql_protocol": "cancel", "encrypted": False,
                      "protection": "none"}


def test_cleartext_after_accepted_ssl_is_an_anomaly():
    facts = dissector().dissect(flow(SSL_REQUEST + startup(user="eve"), b"S"))
    assert facts.flow["encrypted"] is False and facts.handover is None
    assert [a["kind"] for a in facts.rows["anomalies"]] == ["postgresql_starttls_not_followed_by_tls"]


def test_probe():
    d = dissector()
    assert d.probe(flow(startup(user="x", database="y"), b"", port=6000))
    v32 = startup(user="x")
    assert d.probe(flow(v32[:6] + b"\x00\x02" + v32[8:], b""))  # protocol 3.2 (PostgreSQL 18)
    assert not d.probe(flow(startup(database="y"), b""))  # no user: not a real startup
    assert not d.probe(flow(b"GET / HTTP/1.1\r\n\r\n", b""))
    assert not d.probe(flow(b"\x16\x03\x01\x00\x08" + b"\0" * 8, b""))
    assert not d.probe(flow(b"", b"S"))


def test_parsers():
    assert parse_startup(b"user\0a\0database\0b\0\0") == {"user": "a", "database": "b"}
    assert parse_startup(b"user\0a") == {"user": "a"}  # an unterminated last value is kept
    assert parse_startup(b"\0user\0a\0\0") == {}  # the terminator first: no parameters
    messages, end, problem = read_messages(auth(0) + b"Z\x00\x00\x00\x05I" + b"Z\x00\x00", 0)
    assert [(k, b) for k, b in messages] == [(0x52, b"\0\0\0\0"), (0x5A, b"I")] and end == 15 and problem is None
    assert read_messages(b"R\x00\x00\x00\x02", 0)[2] == "message 'R' with length 2"


def test_hostile_input_never_raises_and_is_bounded():
    d = dissector()
    clients = [startup(user="x" * 9000), SSL_REQUEST * 5000, startup(user="a") + msg(b"p", b"x" * 500_000),
               startup(user="a") + b"p\xff\xff\xff\xff", bytes(range(256)) * 64,
               b"\x00\x00\x27\x10\x00\x03\x00\x00" + b"a\0" * 5000]
    servers = [b"N" * 10_000, auth(3) * 20_000, b"R\x00\x00\x00\x08" * 40_000, b"", b"E\x00\x00\x00\x00"]
    for client in clients:
        for server in servers:
            started = time.perf_counter()
            facts = d.dissect(flow(client, server))
            assert time.perf_counter() - started < 0.5
            assert facts.flow["app_protocol"] == "postgresql"


@pytest.mark.parametrize(("name", "expected"), [
    ("ndpi/pgsql.pcap", [("md5", "oryx", True), ("md5", "oryx", True), ("scram-sha-256", "test", True)]),
    ("zeek/postgresql/psql-aws-ssl-disable.pcap", [("md5", "zeek", True)]),
    ("zeek/postgresql/psql-aws-ssl-require-15432.pcap", []),
])
def test_corpus_captures(name: str, expected: list[tuple[str, str, bool]]):
    path = CORPUS / name
    if not path.is_file():
        pytest.skip(f"corpus capture {name} not present (../shared/corpus)")
    result = analyzer.analyze([str(path)], on_problem=lambda p: None)
    flows = result.flows
    assert set(flows["app_protocol"]) == {"postgresql"}
    creds = result.credentials
    assert list(zip(creds["mechanism"], creds["username"], creds["accepted"], strict=True)) == expected
    assert not creds["secret_in_clear"].any()
    if "ssl-require" in name:
        (row,) = flows.itertuples()
        assert (row.starttls, row.protection, row.encrypted, row.tls_version) == (
            "completed", "starttls", True, "TLS 1.2")
        assert len(result.tls) == 1
