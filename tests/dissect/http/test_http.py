"""HTTP dissector (analyzer/dissect/http.py): byte streams per RFC 9112 / RFC 9113, hostile input,
and the bundled captures (tshark agreement is in test_plaintext_oracle.py)."""

from __future__ import annotations

import base64
import struct
import time
from pathlib import Path

from support.flow_helpers import tcp_flow

import analyzer
from analyzer.dissect.base import DissectContext, FlowPayload
from analyzer.dissect.http import HTTPDissector, ntlm_user

ROOT = Path(__file__).resolve().parents[3]


def flow(client: bytes, server: bytes, port: int = 80) -> FlowPayload:
    return tcp_flow(client, server, port)


def dissector() -> HTTPDissector:
    return HTTPDissector().for_run(DissectContext(frames=frozenset({"credentials"})))


GET = b"GET /a/b?c=1 HTTP/1.1\r\nHost: Shop.Example.com:80\r\nUser-Agent: test/1\r\nUpgrade: websocket\r\n\r\n"


def test_request_and_response_facts():
    body = b"hello"
    response = b"HTTP/1.1 200 OK\r\nServer: srv/2\r\nContent-Length: 5\r\n\r\n" + body
    d = dissector()
    assert d.probe(flow(GET, response))
    facts = d.dissect(flow(GET + GET.replace(b"/a/b", b"/second"), response + response)).flow
    assert facts == {"app_protocol": "http", "encrypted": False, "protection": "none", "http_requests": 2,
                     "http_method": "GET",
                     "http_path": "/a/b?c=1", "http_host": "Shop.Example.com:80", "http_user_agent": "test/1",
                     "http_upgrade": "websocket", "http_status": 200, "http_server": "srv/2",
                     "http_redirect_to_https": False}


def test_probe_is_by_content_on_any_port():
    d = dissector()
    assert d.probe(flow(GET, b"", port=5555))
    assert not d.probe(flow(b"\x16\x03\x01\x00\xc8\x01", b"HTTP/1.1 400 Bad Request\r\n\r\n"))  # TLS to port 80
    assert not d.probe(flow(b"OPTIONS rtsp://cam/ RTSP/1.0\r\n\r\n", b"RTSP/1.0 200 OK\r\n\r\n", port=554))
    assert not d.probe(flow(b"GETTING started\r\n", b""))
    assert d.probe(flow(b"", b"HTTP/1.0 200 OK\r\n\r\n"))  # only the server's side was captured
    assert not d.probe(flow(b"", b"SSH-2.0-x\r\n"))


def test_redirect_to_https_of_the_same_host_only():
    same = b"HTTP/1.1 301 Moved\r\nLocation: https://shop.example.com/a/b\r\nContent-Length: 0\r\n\r\n"
    other = b"HTTP/1.1 302 Found\r\nLocation: https://login.example.net/\r\nContent-Length: 0\r\n\r\n"
    facts = dissector().dissect(flow(GET, same)).flow
    assert facts["http_redirect_to_https"] is True and facts["http_location"] == "https://shop.example.com/a/b"
    assert dissector().dissect(flow(GET, other)).flow["http_redirect_to_https"] is False
    assert "http_redirect_to_https" not in dissector().dissect(flow(GET, b"")).flow  # no response: undecided


def test_bodies_are_skipped_by_length_and_chunks_and_interim_responses():
    post = b"POST /f HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    server = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
              b"HTTP/1.1 204 No Content\r\n\r\n")
    facts = dissector().dissect(flow(post + b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n", server)).flow
    assert facts["http_requests"] == 2 and facts["http_status"] == 201 and facts["http_method"] == "POST"


def test_http2_prior_knowledge_and_h2c_upgrade():
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    d = dissector()
    assert d.probe(flow(preface, b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"))
    assert d.dissect(flow(preface, b"")).flow == {"app_protocol": "http2", "encrypted": False, "protection": "none"}
    upgrade = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
    switched = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n\x00\x00\x00\x04"
    facts = d.dissect(flow(upgrade, switched)).flow
    assert facts["app_protocol"] == "http2" and facts["http_upgrade"] == "h2c" and facts["http_status"] == 101


def test_connect_tunnel_with_tls_is_handed_over():
    client = b"CONNECT www.example.com:443 HTTP/1.1\r\nHost: www.example.com:443\r\n\r\n"
    server = b"HTTP/1.1 200 Connection established\r\n\r\n"
    facts = dissector().dissect(flow(client + b"\x16\x03\x01\x00\x05hello", server + b"\x16\x03\x03"))
    assert facts.handover is not None and facts.handover.to == "tls"
    assert (facts.handover.to_server_offset, facts.handover.to_client_offset) == (len(client), len(server))
    assert "encrypted" not in facts.flow and facts.flow["app_protocol"] == "http"
    refused = dissector().dissect(flow(client, b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"))
    assert refused.handover is None and refused.flow["encrypted"] is False


def test_connect_tunnel_one_sided_views_are_handed_over():
    """A one-sided mirror (issue 17 section 3): the CONNECT and the ClientHello without the proxy's
    answer, or the proxy's 200 and ServerHello without the CONNECT, still go to TLS."""
    client = b"CONNECT www.example.com:443 HTTP/1.1\r\nHost: www.example.com:443\r\n\r\n"
    server = b"HTTP/1.1 200 Connection established\r\nProxy-Agent: x\r\n\r\n"
    d = dissector()
    alone = d.dissect(flow(client + b"\x16\x03\x01\x00\x05hello", b""))
    assert alone.handover is not None and (alone.handover.to_server_offset, alone.handover.to_client_offset) == (
        len(client), 0)
    assert "encrypted" not in alone.flow and alone.flow["http_method"] == "CONNECT"
    assert d.probe(flow(b"", server + b"\x16\x03\x03\x00\x05hello"))
    answer = d.dissect(flow(b"", server + b"\x16\x03\x03\x00\x05hello"))
    assert answer.handover is not None and (answer.handover.to_server_offset, answer.handover.to_client_offset) == (
        0, len(server))
    assert answer.flow["http_status"] == 200 and "encrypted" not in answer.flow
    # a 200 whose body is not a TLS record, or a GET's client half: ordinary cleartext HTTP
    for c, s in ((b"", server + b"<html>"), (b"GET / HTTP/1.1\r\n\r\n\x16\x03\x01", b"")):
        facts = d.dissect(flow(c, s))
        assert facts.handover is None and facts.flow["encrypted"] is False


def test_credentials_basic_bearer_digest_ntlm():
    def request(value: bytes) -> bytes:
        return b"GET / HTTP/1.1\r\nHost: h\r\nAuthorization: " + value + b"\r\n\r\n"

    ok, denied = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", b"HTTP/1.1 401 No\r\nContent-Length: 0\r\n\r\n"
    d = dissector()
    basic = d.dissect(flow(request(b"Basic " + base64.b64encode(b"bob:hunter2")), ok))
    (row,) = basic.rows["credentials"]
    assert row["mechanism"] == "basic" and row["username"] == "bob" and row["secret_in_clear"] is True
    assert row["secret_length"] == 7 and row["accepted"] is True and len(str(row["secret_fingerprint"])) == 64
    assert basic.flow["http_auth_scheme"] == "basic"
    bearer = d.dissect(flow(request(b"Bearer abc.def.ghi"), denied)).rows["credentials"][0]
    assert bearer["mechanism"] == "bearer" and bearer["secret_length"] == 11 and bearer["accepted"] is False
    digest = d.dissect(flow(request(b'Digest username="carol", realm="r", response="00"'), ok)).rows["credentials"][0]
    assert digest["username"] == "carol" and digest["secret_in_clear"] is False and digest["secret_fingerprint"] is None
    user, domain = "dave".encode("utf-16-le"), "CORP".encode("utf-16-le")
    header = bytearray(64)
    header[:12] = b"NTLMSSP\x00" + struct.pack("<I", 3)
    struct.pack_into("<HHI", header, 28, len(domain), len(domain), 64)
    struct.pack_into("<HHI", header, 36, len(user), len(user), 64 + len(domain))
    struct.pack_into("<I", header, 60, 1)
    token = bytes(header) + domain + user
    assert ntlm_user(token) == b"CORP\\dave"
    ntlm = d.dissect(flow(request(b"NTLM " + base64.b64encode(token)), ok)).rows["credentials"][0]
    assert ntlm["username"] == "CORP\\dave" and ntlm["secret_in_clear"] is False
    # the same secret has the same fingerprint within a run, another in another run
    again = d.dissect(flow(request(b"Basic " + base64.b64encode(b"bob:hunter2")), ok)).rows["credentials"][0]
    assert again["secret_fingerprint"] == row["secret_fingerprint"]
    other_run = dissector().dissect(flow(request(b"Basic " + base64.b64encode(b"bob:hunter2")), ok))
    assert other_run.rows["credentials"][0]["secret_fingerprint"] != row["secret_fingerprint"]


def test_credentials_rows_only_when_wanted():
    d = HTTPDissector().for_run(DissectContext(frames=frozenset({"flows"})))
    facts = d.dissect(flow(b"GET / HTTP/1.1\r\nAuthorization: Basic Ym9iOng=\r\n\r\n", b""))
    assert "credentials" not in facts.rows and facts.flow["http_auth_scheme"] == "basic"


def test_hostile_input_never_raises_and_is_bounded():
    d = dissector()
    cases = [
        b"GET " + b"/" * 200_000 + b" HTTP/1.1\r\n\r\n",  # overlong target
        b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 20_000 + b"\r\n",  # many headers
        b"GET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET / HTTP/1.1\r\nAuthorization: Basic !!!!\r\n\r\n",
        b"GET / HTTP/1.1\r\nAuthorization: NTLM "
        + base64.b64encode(b"NTLMSSP\x00\x03\x00\x00\x00" + b"\xff" * 60) + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n" * 5000,
        bytes(range(256)) * 100,
    ]
    servers = [b"HTTP/1.1 abc\r\n\r\n",
               b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1\r\nx\r\n" * 50_000,
               b"HTTP/1.1 301\r\nLocation: https://[::1\r\n\r\n", b"\x00" * 70_000]
    for client in cases:
        for server in servers:
            started = time.perf_counter()
            facts = d.dissect(flow(client, server))
            assert time.perf_counter() - started < 0.5
            assert facts.flow["app_protocol"] in ("http", "http2")
    facts = d.dissect(flow(GET, b""))
    assert len(str(d.dissect(flow(cases[0], b"")).flow["http_path"])) == 256 and facts.flow["http_requests"] == 1


def test_bundled_captures():
    flows = analyzer.analyze([str(ROOT / "captures" / "http_basic_auth.pcap")], on_problem=lambda p: None)
    row = flows.flows.iloc[0]
    assert (row["app_protocol"], row["http_method"], row["http_host"], row["http_path"], row["http_status"]) == (
        "http", "GET", "intranet.example.com", "/private/report", 200)
    assert bool(row["encrypted"]) is False and row["encrypted"] is not None
    cred = flows.credentials.iloc[0]
    assert (cred["protocol"], cred["mechanism"], cred["username"], cred["secret_length"]) == (
        "http", "basic", "alice", 6)
    # a TLS client talking to port 80 stays TLS (the server's HTTP 400 does not make it HTTP)
    tls = analyzer.analyze([str(ROOT / "captures" / "tls_client_to_http_port.pcap")], on_problem=lambda p: None).flows
    assert list(tls["app_protocol"]) == ["tls"]
