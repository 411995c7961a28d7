"""SIP dissector (analyzer/dissect/sip.py): RFC 3261 messages over UDP and TCP (start lines, compact
headers, Content-Length framing), Digest credentials without the response hash, hostile input and the
probe. No SIP capture is in the corpus or bundled (see tests/oracle/ORACLE_NET_NOTES.md)."""

from __future__ import annotations

import time

from support.flow_helpers import tcp_flow

from analyzer.dissect.base import Datagram, DissectContext, FlowPayload
from analyzer.dissect.sip import SIPDissector, parse_messages

REGISTER = (b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n"
            b"From: <sip:alice@example.com>;tag=1\r\nTo: <sip:alice@example.com>\r\n"
            b"Call-ID: 843817637684230@998sdasdh09\r\nCSeq: 1 REGISTER\r\nUser-Agent: linphone/5.0\r\n"
            b"Content-Length: 0\r\n\r\n")
CHALLENGE = (b"SIP/2.0 401 Unauthorized\r\nFrom: <sip:alice@example.com>;tag=1\r\nTo: <sip:alice@example.com>;tag=2\r\n"
             b"Call-ID: 843817637684230@998sdasdh09\r\nCSeq: 1 REGISTER\r\n"
             b'WWW-Authenticate: Digest realm="example.com", nonce="abc"\r\nContent-Length: 0\r\n\r\n')
RESPONSE_HASH = b"dfe56131d1958046689d83306477ecc"
AUTHORIZED = REGISTER.replace(b"CSeq: 1", b"CSeq: 2").replace(
    b"Content-Length: 0\r\n", b'Authorization: Digest username="alice", realm="example.com", nonce="abc", '
    b'uri="sip:example.com", response="' + RESPONSE_HASH + b'"\r\nContent-Length: 0\r\n')
OK = CHALLENGE.replace(b"401 Unauthorized", b"200 OK").replace(b"CSeq: 1", b"CSeq: 2")


def udp(datagrams: list[tuple[bool, bytes]], port: int = 5060) -> FlowPayload:
    return FlowPayload(uid="P1", transport="udp", client_ip="10.0.0.1", server_ip="10.0.0.2", client_port=5060,
                       server_port=port, ts_start=0.0,
                       datagrams=[Datagram(float(i), s, p) for i, (s, p) in enumerate(datagrams)])


def dissector() -> SIPDissector:
    return SIPDissector().for_run(DissectContext(frames=frozenset({"credentials"})))


def test_register_with_digest_over_udp():
    d = dissector()
    fp = udp([(True, b"\r\n\r\n"), (True, REGISTER), (False, CHALLENGE), (True, AUTHORIZED), (False, OK)], port=15060)
    assert d.probe(fp)
    facts = d.dissect(fp)
    assert facts.flow == {"app_protocol": "sip", "encrypted": False, "protection": "none", "sip_method": "REGISTER",
                          "sip_status": 401, "sip_from_domain": "example.com", "sip_to_domain": "example.com",
                          "sip_call_id_domain": "998sdasdh09", "sip_user_agent": "linphone/5.0"}
    (row,) = facts.rows["credentials"]
    assert (row["protocol"], row["mechanism"], row["username"], row["secret_in_clear"], row["accepted"]) == (
        "sip", "digest", "alice", False, True)
    assert RESPONSE_HASH.decode() not in repr(facts)


def test_tcp_stream_framed_by_content_length_and_compact_headers():
    body = b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\n"
    invite = (b"INVITE sip:bob@voip.example.org SIP/2.0\r\nf: <sip:alice@example.com>\r\nt: <sip:bob@voip.example.org>"
              b"\r\ni: 1@host.example.com\r\nCSeq: 1 INVITE\r\nl: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    bye = b"BYE sip:bob@voip.example.org SIP/2.0\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    assert [m.method for m in parse_messages(invite + bye)] == [b"INVITE", b"BYE"]
    flow = dissector().dissect(tcp_flow(invite + bye, b"SIP/2.0 180 Ringing\r\n\r\n", 5060)).flow
    assert (flow["sip_method"], flow["sip_status"], flow["sip_to_domain"], flow["sip_call_id_domain"]) == (
        "INVITE", 180, "voip.example.org", "host.example.com")


def test_probe():
    d = dissector()
    assert d.probe(udp([(False, b"SIP/2.0 200 OK\r\n\r\n")]))
    for payload in [b"GET / HTTP/1.1\r\n\r\n", b"INVITE http://x SIP/2.0\r\n", b"HTTP/1.1 200 OK\r\n", b"\r\n",
                    b"OPTIONS sip:x SIP/3.0\r\n", b"\x16\x03\x01\x00\x05"]:
        assert not d.probe(udp([(True, payload)])), payload


def test_hostile_input_never_raises():
    d = dissector()
    started = time.perf_counter()
    for payload in [REGISTER + b"Content-Length: 99999999999\r\n" * 100, b"\r\n" * 30_000, REGISTER[:40],
                    AUTHORIZED.replace(b"username=", b"username=" + b"x" * 10_000), bytes(range(256)) * 10,
                    (REGISTER.replace(b"Content-Length: 0", b"Content-Length: 1") + b"x") * 200]:
        d.dissect(udp([(True, payload)] * 32))
        facts = d.dissect(tcp_flow(payload, payload, 5060))
        assert facts.flow["app_protocol"] == "sip"
    assert time.perf_counter() - started < 1.0
