"""The second look at TCP flows picked up mid-stream (analyzer/dissect/midstream.py, issue 17 §2):
cleartext protocols recognised from a later command or reply, facts from those messages, the
STARTTLS hand-over in step, and no false recognition of encrypted or binary payload."""

from __future__ import annotations

import random
import struct
from dataclasses import replace

import pytest
from support.flow_helpers import tcp_flow

from analyzer.dissect import registered
from analyzer.dissect.base import DissectContext, Facts, FlowPayload
from analyzer.dissect.midstream import picked_up_late, rebased, second_look, shifted
from analyzer.pipeline import _Dissection

CONTEXT = DissectContext(frames=frozenset({"credentials", "ftp_data", "tls"}))


def late(client: bytes, server: bytes, port: int) -> FlowPayload:
    """A flow whose start neither direction captured (a mirror session begun during it)."""
    f = tcp_flow(client, server, port)
    return replace(f, to_server=replace(f.to_server, start_known=False),
                   to_client=replace(f.to_client, start_known=False))


def run(flow: FlowPayload) -> Facts:
    return _Dissection(registered(), CONTEXT).run(flow)


BODY_TAIL = b"ta of the previous response, cut in its middle\r\n<p>lorem</p>\r\n"


def test_http_from_a_later_request_and_response() -> None:
    client = b"name=bob&part=2\r\nGET /next HTTP/1.1\r\nHost: shop.example.com\r\nUser-Agent: t/1\r\n\r\n"
    server = BODY_TAIL + b"HTTP/1.1 302 Found\r\nLocation: https://shop.example.com/next\r\nContent-Length: 0\r\n\r\n"
    facts = run(late(client, server, 8081))
    assert facts.flow["app_protocol"] == "http"
    assert facts.flow["encrypted"] is False and facts.flow["protection"] == "none"
    assert facts.flow["http_host"] == "shop.example.com" and facts.flow["http_path"] == "/next"
    assert facts.flow["http_status"] == 302 and facts.flow["http_redirect_to_https"] is True


def test_http_response_to_a_request_before_the_capture_is_skipped() -> None:
    """The server shows one response more than the client shows requests: its first answers a
    request the capture missed, so request n is paired with response n."""
    client = b"GET /b HTTP/1.1\r\nHost: a.example\r\n\r\n"
    server = (b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno\n"
              b"HTTP/1.1 200 OK\r\nServer: s\r\nContent-Length: 2\r\n\r\nok")
    facts = run(late(client, server, 8081))
    assert facts.flow["http_status"] == 200 and facts.flow["http_server"] == "s"


def test_smtp_from_mail_from_and_an_enhanced_status_reply() -> None:
    client = b"ssage body line\r\n.\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nQUIT\r\n"
    server = b"250 2.0.0 Ok: queued as 12345\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n221 2.0.0 Bye\r\n"
    facts = run(late(client, server, 2626))
    assert facts.flow["app_protocol"] == "smtp" and facts.flow["encrypted"] is False
    assert facts.flow["protection"] == "none"


def test_smtp_starttls_out_of_step_still_hands_over() -> None:
    """Picked up after EHLO was sent: the server's first reply (the EHLO answer) is not the answer
    to STARTTLS; the 220 after it is, and the TLS from both sides follows."""
    hello = b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00"
    client = b"STARTTLS\r\n" + hello
    server = (b"250-mx.example.org\r\n250-STARTTLS\r\n250 8BITMIME\r\n220 2.0.0 Ready to start TLS\r\n"
              b"\x16\x03\x03\x00\x02")
    flow = late(client, server, 2626)
    d, to_server, to_client = second_look([x.for_run(CONTEXT) for x in registered()
                                           if callable(getattr(x, "resync", None))], flow)
    assert d.name == "smtp"
    facts = shifted(d.dissect(rebased(flow, to_server, to_client)), to_server, to_client)
    assert facts.handover is not None and facts.handover.to_server_offset == len(b"STARTTLS\r\n")
    assert facts.handover.to_client_offset == server.index(b"\x16\x03")
    assert facts.flow["starttls"] == "completed" and facts.flow["protection"] == "starttls"


def test_ftp_from_pasv_and_its_227() -> None:
    client = b"PASV\r\nRETR /pub/file.txt\r\n"
    server = (b"227 Entering Passive Mode (10,0,0,2,117,48)\r\n150 Opening BINARY mode\r\n"
              b"226 Transfer complete\r\n")
    facts = run(late(client, server, 2100))
    assert facts.flow["app_protocol"] == "ftp" and facts.flow["encrypted"] is False
    assert facts.rows["ftp_data"][0]["port"] == 117 * 256 + 48


def test_imap_from_a_tagged_command() -> None:
    client = b"a7 FETCH 1 (BODY[])\r\na8 LOGOUT\r\n"
    server = b" of a literal\r\n)\r\n* 1 FETCH (BODY[] {2}\r\nhi)\r\na7 OK done\r\n* BYE\r\na8 OK bye\r\n"
    facts = run(late(client, server, 1143))
    assert facts.flow["app_protocol"] == "imap" and facts.flow["encrypted"] is False
    assert "imap_banner" not in facts.flow  # an untagged reply mid-stream is no greeting


def test_pop3_from_a_numbered_retr() -> None:
    client = b"RETR 2\r\nDELE 2\r\nQUIT\r\n"
    server = b"+OK 12 octets\r\nhello world\r\n.\r\n+OK message 2 deleted\r\n+OK bye\r\n"
    facts = run(late(client, server, 1110))
    assert facts.flow["app_protocol"] == "pop3" and facts.flow["encrypted"] is False


def test_pop3_credentials_mid_stream_keep_no_secret() -> None:
    client = b"STAT\r\nUSER alice\r\nPASS s3cret-pop3\r\n"
    server = b"+OK 2 320\r\n+OK send password\r\n+OK logged in\r\n"
    facts = run(late(client, server, 1110))
    rows = facts.rows["credentials"]
    assert rows[0]["username"] == "alice" and rows[0]["accepted"] is True
    assert "s3cret-pop3" not in repr(facts)


def test_a_one_sided_client_view_is_recognised_by_its_commands() -> None:
    client = b"USER alice\r\nPASS s3cret-ftp\r\nSYST\r\nPASV\r\n"
    flow = tcp_flow(client, b"", 2100)  # start captured, the server's direction filtered out
    assert picked_up_late(flow)
    assert run(flow).flow["app_protocol"] == "ftp"


def test_flows_seen_from_the_start_in_both_directions_get_no_second_look(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    d = _Dissection(registered(), CONTEXT)
    for r in d.resyncers:
        monkeypatch.setattr(r, "resync", lambda flow, _r=r: calls.append(_r.name))
    d.run(tcp_flow(b"\x00\x01garbage\r\nGET / HTTP/1.1\r\n\r\n", b"\x00binary", 8081))
    assert calls == []
    d.run(late(b"\x00\x01garbage\r\nGET / HTTP/1.1\r\n\r\n", b"\x00binary", 8081))
    assert calls  # the same bytes picked up mid-stream are looked at again


def _records(rng: random.Random, kind: int, n: int) -> bytes:
    """TLS 1.2 records of random (encrypted) content."""
    out = b""
    for _ in range(n):
        body = rng.randbytes(rng.randrange(20, 1400))
        out += struct.pack("!BHH", kind, 0x0303, len(body)) + body
    return out


@pytest.mark.parametrize("seed", range(40))
def test_encrypted_or_binary_payload_is_never_called_cleartext(seed: int) -> None:
    """Random bytes (with the line ends and letters encrypted payload has by chance), TLS
    application data and SSH-like binary packets picked up mid-stream: no cleartext protocol."""
    rng = random.Random(seed)
    noise = rng.randbytes(6000)
    for client, server in ((noise[:3000], noise[3000:]), (_records(rng, 23, 6), _records(rng, 23, 6)),
                           (rng.randbytes(7) + b"\r\n" + rng.randbytes(3000), rng.randbytes(4000))):
        facts = run(late(client, server, rng.choice((80, 25, 110, 143, 21, 8080, 40000))))
        assert facts.flow.get("encrypted") is not False, facts.flow


def test_binary_lines_that_look_like_commands_are_not_taken() -> None:
    """A line must be printable: `GET / HTTP/1.1` with a control byte inside is not a request line."""
    client = b"\x17\x03\x03GET /\x01 HTTP/1.1\r\nMAIL FROM:\x00<a@b>\r\n"
    facts = run(late(client, b"\x17\x03\x03\x00\x10" + bytes(16), 443))
    assert facts.flow.get("app_protocol") in (None, "tls")


@pytest.mark.parametrize("name", ["http", "smtp", "imap", "pop3", "ftp"])
def test_sessions_cut_anywhere_and_damaged_never_raise(name: str) -> None:
    """Real-shaped sessions (test_plaintext_fuzz's) picked up at random offsets of each direction,
    damaged: the second look never raises, its offsets lie in the data, and it recognises the
    undamaged session's own protocol when it recognises any."""
    from support.fuzz_helpers import damage
    from test_plaintext_fuzz import SESSIONS

    rng = random.Random(f"midstream-{name}")
    client, server = SESSIONS[name]
    resyncers = [d.for_run(CONTEXT) for d in registered() if callable(getattr(d, "resync", None))]
    named = 0
    for i in range(300):
        c, s = client[rng.randrange(len(client)):], server[rng.randrange(len(server)):]
        if i % 2:
            c, s = damage(rng, c, [b"\r\n", b" "]), damage(rng, s, [b"\r\n", b" "])
        flow = late(c, s, 40000)
        found = second_look(resyncers, flow)
        if found is None:
            continue
        d, to_server, to_client = found
        assert 0 <= to_server <= len(c) and 0 <= to_client <= len(s)
        facts = shifted(d.dissect(rebased(flow, to_server, to_client)), to_server, to_client)
        assert facts.flow.get("app_protocol") is not None
        if i % 2 == 0:
            named += d.name == name
            assert d.name == name, (d.name, c[:80], s[:80])
    assert named >= 30  # the look does recognise most cuts of its protocol
