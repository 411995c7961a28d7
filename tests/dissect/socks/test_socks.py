"""SOCKS dissector (analyzer/dissect/socks.py): byte streams per SOCKS 4 / 4a, RFC 1928 and RFC 1929,
one-sided views, the hand-over to TLS, hostile input (a seeded fuzz loop), the probe against every
other protocol's bytes, and the corpus captures. tshark agreement: tests/captures/test_proxy_captures.py
and tests/oracle/test_proxy_oracle.py."""

from __future__ import annotations

import random
import struct
import time
from pathlib import Path

import pytest
from support.flow_helpers import tcp_flow
from support.fuzz_helpers import damage

import analyzer
from analyzer.dissect.base import DissectContext, Facts, FlowPayload
from analyzer.dissect.socks import SOCKSDissector, read_client, read_server

CORPUS = Path(__file__).resolve().parents[4] / "shared" / "corpus" / "pcaps"
HELLO = b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00"  # a TLS handshake record (content is the TLS dissector's)
SERVER_HELLO = b"\x16\x03\x03\x00\x05\x02\x00\x00\x01\x00"


def dissector() -> SOCKSDissector:
    return SOCKSDissector().for_run(DissectContext(frames=frozenset({"credentials"})))


def flow(client: bytes, server: bytes, port: int = 1080) -> FlowPayload:
    return tcp_flow(client, server, port)


def socks4(host: bytes | None = None, ip: bytes = b"\x5d\xb8\xd8\x22", port: int = 443, user: bytes = b"") -> bytes:
    if host is not None:
        return b"\x04\x01" + struct.pack(">H", port) + b"\x00\x00\x00\x07" + user + b"\x00" + host + b"\x00"
    return b"\x04\x01" + struct.pack(">H", port) + ip + user + b"\x00"


REPLY4 = b"\x00\x5a\x00\x00\x00\x00\x00\x00"


def socks5_request(host: bytes = b"example.org", port: int = 443, atyp: int = 3) -> bytes:
    if atyp == 3:
        addr = bytes([len(host)]) + host
    elif atyp == 1:
        addr = bytes([10, 0, 0, 9])
    else:
        addr = bytes(15) + b"\x01"
    return b"\x05\x01\x00" + bytes([atyp]) + addr + struct.pack(">H", port)


REPLY5 = b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00"


def test_socks4_connect_hands_tls_over():
    client, server = socks4(user=b"bob"), REPLY4
    d = dissector()
    assert d.probe(flow(client, server))
    facts = d.dissect(flow(client + HELLO, server + SERVER_HELLO))
    assert facts.handover is not None and facts.handover.to == "tls"
    assert (facts.handover.to_server_offset, facts.handover.to_client_offset) == (len(client), 8)
    assert facts.flow == {"app_protocol": "socks", "socks_version": "4", "socks_command": "connect",
                          "socks_target_host": "93.184.216.34", "socks_target_port": 443, "socks_user": "bob",
                          "socks_reply": "granted"}


def test_socks4a_host_name_becomes_the_server_name():
    client = socks4(host=b"www.example.com", port=8443)
    facts = dissector().dissect(flow(client + HELLO, REPLY4 + SERVER_HELLO))
    assert facts.flow["socks_version"] == "4a" and facts.flow["socks_target_host"] == "www.example.com"
    assert facts.flow["tls_server_name"] == "www.example.com" and facts.flow["socks_target_port"] == 8443
    assert facts.handover is not None and facts.handover.to_server_offset == len(client)


@pytest.mark.parametrize(("code", "name"), [(91, "rejected"), (92, "rejected_no_identd"),
                                            (93, "rejected_identd_mismatch")])
def test_socks4_refused_is_cleartext(code: int, name: str):
    facts = dissector().dissect(flow(socks4(), bytes([0, code]) + bytes(6)))
    assert facts.handover is None
    assert (facts.flow["socks_reply"], facts.flow["encrypted"], facts.flow["protection"]) == (name, False, "none")


@pytest.mark.parametrize("atyp", [1, 3, 4])
def test_socks5_connect_every_address_type(atyp: int):
    client = b"\x05\x01\x00" + socks5_request(atyp=atyp)
    server = b"\x05\x00" + REPLY5
    facts = dissector().dissect(flow(client + HELLO, server + SERVER_HELLO))
    host = {1: "10.0.0.9", 3: "example.org", 4: "::1"}[atyp]
    assert facts.flow["socks_target_host"] == host and facts.flow["socks_target_port"] == 443
    assert facts.flow["socks_auth_method"] == "none" and facts.flow["socks_reply"] == "succeeded"
    assert facts.handover is not None
    assert (facts.handover.to_server_offset, facts.handover.to_client_offset) == (len(client), len(server))
    assert ("tls_server_name" in facts.flow) == (atyp == 3)  # an address is no server name


def test_socks5_username_password_never_keeps_the_password():
    client = b"\x05\x02\x00\x02" + b"\x01\x05alice\x0cs3cret-socks" + socks5_request()
    server = b"\x05\x02" + b"\x01\x00" + REPLY5
    facts = dissector().dissect(flow(client + HELLO, server + SERVER_HELLO))
    assert facts.flow["socks_auth_method"] == "username_password" and facts.flow["socks_user"] == "alice"
    (row,) = facts.rows["credentials"]
    assert (row["protocol"], row["mechanism"], row["username"], row["secret_length"], row["accepted"]) == (
        "socks", "user_pass", "alice", 12, True)
    assert "s3cret" not in repr(facts)
    assert facts.handover is not None and facts.handover.to_server_offset == len(client)


def test_socks5_login_refused():
    client = b"\x05\x01\x02" + b"\x01\x05alice\x05wrong"
    facts = dissector().dissect(flow(client, b"\x05\x02\x01\x01"))
    assert facts.rows["credentials"][0]["accepted"] is False
    assert (facts.flow["encrypted"], facts.flow["protection"]) == (False, "none")
    assert "socks_reply" not in facts.flow


@pytest.mark.parametrize(("rep", "name"), [(1, "general_failure"), (2, "not_allowed"), (5, "connection_refused"),
                                           (8, "address_type_not_supported"), (9, "9")])
def test_socks5_reply_codes(rep: int, name: str):
    facts = dissector().dissect(flow(b"\x05\x01\x00" + socks5_request(), b"\x05\x00\x05" + bytes([rep]) + b"\x00\x01"
                                     + bytes(6)))
    assert facts.flow["socks_reply"] == name and facts.flow["encrypted"] is False


def test_no_acceptable_method():
    facts = dissector().dissect(flow(b"\x05\x01\x02", b"\x05\xff"))
    assert facts.flow["socks_auth_method"] == "no_acceptable" and facts.flow["encrypted"] is False


@pytest.mark.parametrize(("after_client", "after_server", "state"), [
    (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"HTTP/1.1 200 OK\r\n", (False, "none", None)),
    (b"SSH-2.0-OpenSSH_9.2\r\n", b"SSH-2.0-OpenSSH_9.2\r\n", (True, "ssh", None)),
    (b"\x00\x01binary", b"\x00\x02", (None, None, "tunnel")),
    (b"", b"", (None, None, "upgrade_not_seen")),
])
def test_what_the_tunnel_carries_decides(after_client: bytes, after_server: bytes,
                                         state: tuple[object, object, object]):
    facts = dissector().dissect(flow(socks4() + after_client, REPLY4 + after_server))
    assert facts.handover is None
    assert (facts.flow.get("encrypted"), facts.flow.get("protection"), facts.flow.get("undecided_reason")) == state


def test_udp_associate_control_flow_is_cleartext():
    ask = b"\x05\x01\x00" + b"\x05\x03\x00\x01" + bytes(6)
    facts = dissector().dissect(flow(ask, b"\x05\x00" + REPLY5))
    assert facts.flow["socks_command"] == "udp_associate" and facts.flow["socks_target_host"] == "0.0.0.0"
    assert (facts.flow["encrypted"], facts.flow["protection"]) == (False, "none")


def test_client_only_view_hands_the_client_half_over():
    client = b"\x05\x01\x00" + socks5_request()
    d = dissector()
    assert d.probe(flow(client + HELLO, b""))
    facts = d.dissect(flow(client + HELLO, b""))
    assert facts.handover is not None and (facts.handover.to_server_offset, facts.handover.to_client_offset) == (
        len(client), 0)
    assert facts.flow["socks_target_host"] == "example.org" and "socks_reply" not in facts.flow


def test_server_only_view_needs_what_follows_the_replies():
    d = dissector()
    for server in (REPLY4 + SERVER_HELLO, b"\x05\x00" + REPLY5 + SERVER_HELLO,
                   b"\x05\x02\x01\x00" + REPLY5 + SERVER_HELLO):
        assert d.probe(flow(b"", server)), server
        facts = d.dissect(flow(b"", server))
        assert facts.handover is not None and facts.handover.to_client_offset == len(server) - len(SERVER_HELLO)
    # the replies alone are too short to tell from other binary protocols: not claimed
    for server in (REPLY4, b"\x05\x00" + REPLY5, REPLY4 + b"\x00\x01\x02\x03"):
        assert not d.probe(flow(b"", server)), server


def test_end_to_end_tls_server_name_from_the_target(tmp_path: Path):
    """Through the whole engine: the SOCKS 4a host name is the flow's tls_server_name when the
    ClientHello has no SNI, and the ClientHello's SNI wins when it has one."""
    from analyzer.dissect import registered
    from analyzer.pipeline import _Dissection

    run = _Dissection(registered(), DissectContext(frames=frozenset({"tls", "credentials"})))
    hello = bytes.fromhex(  # a TLS 1.2 ClientHello without extensions
        "160301002d010000290303" + "00" * 32 + "00" + "0002c02f" + "0100")
    facts = run.run(flow(socks4(host=b"target.example") + hello, REPLY4))
    assert facts.flow["app_protocol"] == "socks" and facts.flow["tls_server_name"] == "target.example"
    assert facts.flow["tls_upgraded"] is True and facts.flow.get("ja4")


def test_probe_refuses_other_protocols():
    d = dissector()
    others = [(b"GET / HTTP/1.1\r\n\r\n", b"HTTP/1.1 200 OK\r\n"), (b"\x16\x03\x01\x00\x05", b""),
              (b"SSH-2.0-x\r\n", b"SSH-2.0-y\r\n"), (b"", b"220 mx ESMTP\r\n"),
              (b"\x04\x03\x00\x00", b""),  # SOCKS 4 has no command 3
              (b"\x04\x01\x01\xbb\x01\x02\x03\x04" + b"x" * 300, b""),  # no NUL in reach
              (b"\x05\x00", b""), (b"\x05\x03\x00\x01", b""),  # no methods / cut greeting
              (b"\x05\x01\x00", b"\x05\x02"),  # a method that was not offered
              (b"\x04\x01\x00\x50\x01\x02\x03\x04\x00", b"\x00\x10")]  # not a SOCKS 4 reply code
    for client, server in others:
        assert not d.probe(flow(client, server)), (client, server)


def test_readers_are_bounded_and_never_raise():
    assert read_client(b"") is None and read_server(b"", None) is None
    assert read_client(b"\x05\xff" + bytes(255)) is not None
    ask = read_client(b"\x04\x01\x00\x50\x00\x00\x00\x01\x00" + b"h" * 10_000)  # a 4a host name with no NUL
    assert ask is not None and ask.end == -1 and ask.host is not None and len(ask.host) <= 256


_INSERTS = [b"\x00", b"\x05", b"\x01", b"\x03", b"\xff", b"\x16\x03\x01"]
SESSIONS = [
    (socks4(user=b"u") + HELLO, REPLY4 + SERVER_HELLO),
    (socks4(host=b"h.example") + HELLO, REPLY4 + SERVER_HELLO),
    (b"\x05\x02\x00\x02\x01\x05alice\x07pw-9f3k" + socks5_request() + HELLO,
     b"\x05\x02\x01\x00" + REPLY5 + SERVER_HELLO),
    (b"\x05\x01\x00" + socks5_request(atyp=4) + b"GET / HTTP/1.1\r\n", b"\x05\x00" + REPLY5),
]


def test_damaged_sessions_never_raise():
    rng = random.Random("socks")
    d = dissector()
    start = time.perf_counter()
    for i in range(3000):
        client, server = SESSIONS[i % len(SESSIONS)]
        f = flow(damage(rng, client, _INSERTS), damage(rng, server, _INSERTS))
        d.probe(f)
        facts = d.dissect(f)
        assert isinstance(facts, Facts)
        for value in facts.flow.values():
            assert not isinstance(value, str) or len(value) <= 256
        for row in facts.rows.get("credentials", []):  # a damaged login keeps a length, never the bytes
            assert set(row) >= {"secret_length", "secret_fingerprint"} and "pw-9f3k" not in repr(
                {k: v for k, v in row.items() if k != "username"})
    assert time.perf_counter() - start < 20


def _corpus(name: str) -> Path:
    path = CORPUS / name
    if not path.exists():
        pytest.skip(f"{path} not present (the shared corpus is not on this machine)")
    return path


def test_corpus_socks4_and_socks5_captures():
    f = analyzer.analyze([str(_corpus("ja4/socks-https-example.pcap"))]).flows.sort_values("ts_start")
    assert list(f["app_protocol"]) == ["socks"] * 3 and list(f["socks_version"]) == ["4", "4a", "5"]
    assert list(f["socks_reply"]) == ["granted", "granted", "succeeded"]
    assert set(f["tls_version"]) == {"TLS 1.0"} and f["encrypted"].all() and set(f["protection"]) == {"tls"}
    z = analyzer.analyze([str(_corpus("zeek/socks-with-ssl.pcap"))]).flows
    assert list(z["socks_version"]) == ["5"] and list(z["tls_server_name"]) == ["www.google.com"]


@pytest.mark.tshark
@pytest.mark.parametrize("name", ["ja4/socks-https-example.pcap", "zeek/socks-with-ssl.pcap"])
def test_corpus_server_only_cut_gives_the_tls_row(name: str, tmp_path: Path):
    """The issue's case: TLS behind a SOCKS proxy whose client side (request and ClientHello) is not in
    the capture. tshark gives no TLS for such a cut (its SOCKS dissector needs the request), so the
    two-sided run is the reference: the server's facts equal, the client's empty."""
    import shutil
    import subprocess

    path = _corpus(name)
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed (it makes the cut)")
    cut = tmp_path / "server_only.pcap"
    subprocess.run(["tshark", "-r", str(path), "-Y", "tcp.srcport==1080", "-w", str(cut)], check=True,
                   capture_output=True, timeout=120)
    whole, part = analyzer.analyze([str(path)]), analyzer.analyze([str(cut)])
    assert set(part.flows["visibility"]) == {"server_only"} and set(part.flows["app_protocol"]) == {"socks"}
    assert part.flows["encrypted"].all() and set(part.flows["protection"]) == {"tls"}
    a = whole.tls.sort_values("ts").reset_index(drop=True)
    b = part.tls.sort_values("client_port").reset_index(drop=True)
    a = a.sort_values("client_port").reset_index(drop=True)
    assert len(a) == len(b) > 0
    for column in ("version", "cipher", "cipher_code", "ja3s", "ja4s", "cert_chain", "cert_visible", "established"):
        assert list(b[column]) == list(a[column]), column
    assert b["client_hello_count"].eq(0).all() and b["ja4"].isna().all() and b["server_name"].isna().all()


def test_merge_handover_keeps_a_parent_value_a_child_leaves_null():
    """The child's null erases nothing the parent knew (the SOCKS target as tls_server_name), except in
    the encryption state, where the child decides (its undecided `encrypted` replaces the parent's)."""
    from analyzer.dissect.base import merge_handover

    parent = Facts(flow={"app_protocol": "socks", "tls_server_name": "target.example", "encrypted": False})
    child = Facts(flow={"app_protocol": "tls", "tls_server_name": None, "encrypted": None,
                        "undecided_reason": "one_sided", "tls_version": None})
    flow = merge_handover(parent, child).flow
    assert flow["tls_server_name"] == "target.example" and flow["app_protocol"] == "socks"
    assert flow["encrypted"] is None and flow["undecided_reason"] == "one_sided" and flow["tls_version"] is None
    sni = Facts(flow={"app_protocol": "tls", "tls_server_name": "sni.example", "encrypted": True})
    assert merge_handover(parent, sni).flow["tls_server_name"] == "sni.example"
