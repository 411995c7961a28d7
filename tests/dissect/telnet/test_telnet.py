"""Telnet dissector (analyzer/dissect/telnet.py): IAC handling per RFC 854/855 (escaping, SB ... SE),
logins (prompt order, echo, retries, NEW-ENVIRON USER), the secret never kept, hostile input, the
probe, and the corpus capture (ndpi/telnet.pcap). tshark agreement: tests/oracle/test_net_oracle.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support.flow_helpers import tcp_flow

import analyzer
from analyzer.dissect.base import DissectContext
from analyzer.dissect.telnet import TelnetDissector, client_lines, strip_iac

CORPUS = Path(__file__).resolve().parents[4] / "shared" / "corpus" / "pcaps"
NEGOTIATE_S = b"\xff\xfd\x18\xff\xfd\x20\xff\xfd\x27\xff\xfb\x01\xff\xfb\x03"
NEGOTIATE_C = b"\xff\xfb\x18\xff\xfa\x18\x00xterm\xff\xf0\xff\xfd\x01\xff\xfd\x03"


def dissector() -> TelnetDissector:
    return TelnetDissector().for_run(DissectContext(frames=frozenset({"credentials"})))


def rows(client: bytes, server: bytes, port: int = 23) -> list[tuple[object, ...]]:
    facts = dissector().dissect(tcp_flow(client, server, port))
    return [(r["mechanism"], r["username"], r["secret_in_clear"], r["secret_length"], r["accepted"])
            for r in facts.rows.get("credentials", [])]


def test_character_mode_login_with_echo():
    # the client sends one character per segment; the server echoes the user name, not the password
    client = NEGOTIATE_C + b"a" + b"l" + b"i" + b"c" + b"e" + b"\r\0" + b"s3cret-telnet\r\0" + b"ls\r\0"
    server = (NEGOTIATE_S + b"\r\nDebian GNU/Linux 12\r\nhost login: " + b"alice" + b"\r\nPassword: "
              + b"\r\nLinux host 6.1\r\nalice@host:~$ ")
    d = dissector()
    fp = tcp_flow(client, server, 2323)
    assert d.probe(fp)
    facts = d.dissect(fp)
    assert facts.flow == {"app_protocol": "telnet", "encrypted": False, "protection": "none",
                          "telnet_username": "alice", "telnet_options": 9}
    assert rows(client, server) == [("login", "alice", True, 13, True)]
    assert "s3cret-telnet" not in repr(facts)


def test_retry_after_login_incorrect():
    client = b"\xff\xfb\x18bob\r\nwrong\r\nbob\r\nright\r\nexit\r\n"
    server = (b"\xff\xfd\x18login: Password: \r\nLogin incorrect\r\nlogin: Password: \r\n"
              b"Last login: Sat Nov 27 20:11:43 from there\r\n$ ")
    assert rows(client, server) == [("login", "bob", True, 5, False), ("login", "bob", True, 5, True)]


def test_password_only_and_environ_user():
    env = b"\xff\xfa\x27\x00\x00USER\x01carol\xff\xf0"
    client = b"\xff\xfb\x27" + env + b"hunter2\r\n"
    server = b"\xff\xfd\x27\xff\xfa\x27\x01\xff\xf0Password:"
    facts = dissector().dissect(tcp_flow(client, server, 23))
    assert facts.flow["telnet_username"] == "carol"
    assert rows(client, server) == [("login", "carol", True, 7, None)]
    # a router asking only for a password
    assert rows(b"\xff\xfc\x01pw\r\n", b"\xff\xfb\x01\r\nUser Access Verification\r\n\r\nPassword: ") == [
        ("login", None, True, 2, None)]


def test_iac_escaping_and_subnegotiation():
    text, options, user = strip_iac(b"a\xff\xffb\xff\xfa\x18\x00x\xff\xff\xff\xf0c\xff\xfb\x01d\xff\xf1e")
    assert (text, options, user) == (b"a\xffbcde", 2, None)
    assert strip_iac(b"abc\xff")[0] == b"abc" and strip_iac(b"\xff\xfa\x18 never ends")[0] == b""
    assert client_lines(b"ab\x7fc\r\0de\x08\x08f\r\npartial") == [b"ac", b"f"]
    # 0xFF inside a password is sent doubled; the length counts it once
    assert rows(b"u\r\np\xff\xffw\r\n", b"\xff\xfd\x01login: Password:") == [("login", "u", True, 3, None)]


def test_no_prompt_no_row_and_probe():
    d = dissector()
    assert rows(b"\xff\xfb\x18ls\r\n", b"\xff\xfd\x18$ ") == []
    assert d.probe(tcp_flow(b"", b"\xff\xfd\x25", 21))
    assert d.probe(tcp_flow(b"", b"\r\nrouter login: ", 23))
    for client, server, port in [(b"GET / HTTP/1.1\r\n", b"HTTP/1.1 200 OK\r\n", 23), (b"", b"login: ", 2323),
                                 (b"\xff\x00", b"", 23), (b"", b"220 ftp ready\r\n", 23), (b"\xff\xfb", b"", 23)]:
        assert not d.probe(tcp_flow(client, server, port)), (client, server, port)


def test_hostile_input_never_raises_and_is_bounded():
    d = dissector()
    cases = [b"\xff" * 70_000, b"\xff\xfa" * 30_000, bytes(range(256)) * 200, b"login:" * 10_000,
             b"x\r" * 40_000, b"\xff\xfa\x27\x00" + b"\x00USER\x01" * 5000 + b"\xff\xf0"]
    for client in cases:
        for server in cases[:4]:
            started = time.perf_counter()
            facts = d.dissect(tcp_flow(client, server, 23))
            assert time.perf_counter() - started < 0.5
            assert facts.flow["app_protocol"] == "telnet"
            assert len(facts.rows.get("credentials", [])) <= 16


def test_corpus_capture():
    path = CORPUS / "ndpi" / "telnet.pcap"
    if not path.is_file():
        pytest.skip(f"corpus capture {path} not present (../shared/corpus)")
    result = analyzer.analyze([str(path)], on_problem=lambda p: None)
    (row,) = result.flows[result.flows["app_protocol"] == "telnet"].itertuples()
    assert (row.telnet_username, row.encrypted, row.protection) == ("fake", False, "none")  # nDPI: "Username: fake"
    creds = result.credentials
    assert list(zip(creds["username"], creds["mechanism"], creds["secret_length"], creds["accepted"], strict=True)) == [
        ("fake", "login", 4, True)]
