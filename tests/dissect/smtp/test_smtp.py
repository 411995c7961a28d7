"""SMTP dissector (analyzer/dissect/smtp.py): byte streams per RFC 5321 / 3207 / 4954, hostile input,
and the bundled captures (with the hand-over to TLS). tshark agreement: test_plaintext_oracle.py."""

from __future__ import annotations

import base64
import time
from pathlib import Path

from support.flow_helpers import tcp_flow

import analyzer
from analyzer.dissect.base import DissectContext, FlowPayload
from analyzer.dissect.smtp import SMTPDissector

ROOT = Path(__file__).resolve().parents[3]


def flow(client: bytes, server: bytes, port: int = 25) -> FlowPayload:
    return tcp_flow(client, server, port)


def dissector() -> SMTPDissector:
    return SMTPDissector().for_run(DissectContext(frames=frozenset({"credentials"})))


GREETING = b"220 mx.example.com ESMTP ready\r\n"
EHLO_REPLY = b"250-mx.example.com\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN CRAM-MD5\r\n"


def test_starttls_accepted_hands_over_at_the_first_tls_byte():
    client = b"EHLO me.example.org\r\nSTARTTLS\r\n"
    server = GREETING + EHLO_REPLY + b"220 2.0.0 go ahead\r\n"
    d = dissector()
    assert d.probe(flow(client, server, port=2525))
    facts = d.dissect(flow(client + b"\x16\x03\x01", server + b"\x16\x03\x03"))
    assert facts.handover is not None and facts.handover.to == "tls"
    assert (facts.handover.to_server_offset, facts.handover.to_client_offset) == (len(client), len(server))
    # no `encrypted`: after the hand-over it is TLS's to say
    assert facts.flow == {"app_protocol": "smtp", "smtp_banner": "mx.example.com ESMTP ready",
                          "smtp_helo": "me.example.org", "smtp_commands": 2,
                          "smtp_auth_offered": "PLAIN LOGIN CRAM-MD5", "starttls": "completed",
                          "protection": "starttls"}


def test_an_accepted_upgrade_without_tls_after_it():
    client = b"EHLO a\r\nSTARTTLS\r\n"
    server = GREETING + EHLO_REPLY + b"220 go ahead\r\n"
    missing = dissector().dissect(flow(client, server))  # the handshake is not in the capture
    assert missing.handover is None and missing.flow["starttls"] == "completed" and "encrypted" not in missing.flow
    clear = dissector().dissect(flow(client + b"MAIL FROM:<a@b>\r\n", server))
    assert clear.handover is None and clear.flow["encrypted"] is False
    assert [a["kind"] for a in clear.rows["anomalies"]] == ["smtp_starttls_not_followed_by_tls"]
    sslv2 = dissector().dissect(flow(client + b"\x80\x2e\x01\x00\x02", server))
    assert sslv2.handover is not None


def test_starttls_states():
    d = dissector()
    refused = d.dissect(flow(b"EHLO a\r\nSTARTTLS\r\nQUIT\r\n", GREETING + EHLO_REPLY + b"454 TLS not available\r\n"
                             b"221 bye\r\n"))
    assert refused.handover is None and refused.flow["starttls"] == "requested_refused"
    assert refused.flow["encrypted"] is False and refused.flow["smtp_commands"] == 3
    unused = d.dissect(flow(b"EHLO a\r\nQUIT\r\n", GREETING + EHLO_REPLY + b"221 bye\r\n")).flow
    assert unused["starttls"] == "offered_not_used"
    plain = d.dissect(flow(b"EHLO a\r\n", GREETING + b"250-x\r\n250 SIZE 10\r\n")).flow
    assert plain["starttls"] == "not_offered" and plain["encrypted"] is False
    assert "starttls" not in d.dissect(flow(b"", GREETING)).flow  # nothing said about extensions yet


def test_auth_plain_login_cram_md5_and_data_is_skipped():
    plain = base64.b64encode(b"\0alice\0s3cret!")
    message = b"DATA\r\nAUTH PLAIN " + plain + b"\r\n.\r\n"  # a message that looks like commands
    client = (b"EHLO a\r\nAUTH PLAIN " + plain + b"\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n" + message +
              b"AUTH LOGIN\r\n" + base64.b64encode(b"bob") + b"\r\n" + base64.b64encode(b"pw") + b"\r\n" +
              b"AUTH CRAM-MD5\r\n" + base64.b64encode(b"carol 0123456789abcdef") + b"\r\nQUIT\r\n")
    server = (GREETING + EHLO_REPLY + b"235 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 queued\r\n"
              b"334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n535 no\r\n334 PDEyMzQ+\r\n235 ok\r\n221 bye\r\n")
    facts = dissector().dissect(flow(client, server))
    rows = facts.rows["credentials"]
    assert [(r["mechanism"], r["username"], r["secret_in_clear"], r["secret_length"], r["accepted"]) for r in rows] == [
        ("plain", "alice", True, 7, True), ("login", "bob", True, 2, False), ("cram-md5", "carol", False, None, True)]
    assert facts.flow["smtp_commands"] == 8
    assert all("s3cret" not in str(v) for r in rows for v in r.values())


def test_probe():
    d = dissector()
    assert d.probe(flow(b"EHLO x\r\n", GREETING, port=10025))
    assert d.probe(flow(b"", GREETING, port=10025))  # the greeting names SMTP
    assert not d.probe(flow(b"USER alice\r\n", b"220 FTP ready\r\n", port=21))
    assert not d.probe(flow(b"", b"220 ProFTPD Server\r\n", port=2121))
    assert not d.probe(flow(b"GET / HTTP/1.1\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n"))


def test_hostile_input_never_raises_and_is_bounded():
    d = dissector()
    clients = [b"EHLO " + b"x" * 100_000, b"AUTH PLAIN\r\n" + b"\xff" * 70_000, b"BDAT 99999999999999\r\n",
               b"BDAT -1\r\n", b"AUTH\r\n", b"DATA\r\n" + b"x\r\n" * 30_000, b"NOOP\r\n" * 40_000,
               bytes(range(256)) * 64,
               b"AUTH XOAUTH2 " + base64.b64encode(b"user=a\x01auth=Bearer t\x01\x01") + b"\r\n"]
    servers = [GREETING + b"334 \r\n" * 10_000, GREETING + b"250-" + b"y" * 100_000, b"220\r\n" + b"\x00" * 60_000,
               GREETING + b"354 go\r\n"]
    for client in clients:
        for server in servers:
            started = time.perf_counter()
            facts = d.dissect(flow(client, server))
            assert time.perf_counter() - started < 0.5
            assert facts.flow["app_protocol"] == "smtp"
    overlong = d.dissect(flow(b"EHLO " + b"x" * 100_000, GREETING))
    assert [a["kind"] for a in overlong.rows["anomalies"]] == ["smtp_line_overlong"]


def test_bundled_captures():
    result = analyzer.analyze([str(ROOT / "captures" / "smtp_starttls.pcap")], on_problem=lambda p: None)
    row = result.flows.iloc[0]
    assert (row["app_protocol"], row["starttls"], row["tls_upgraded"], row["encrypted"]) == (
        "smtp", "completed", True, True)
    assert list(result.tls["server_name"]) == ["mail.example.com"] and list(result.tls["server_stop"]) == ["encrypted"]
    plain = analyzer.analyze([str(ROOT / "captures" / "smtp_plain_auth.pcap")], on_problem=lambda p: None)
    row = plain.flows.iloc[0]
    assert (row["app_protocol"], row["starttls"], row["smtp_auth_offered"], bool(row["encrypted"])) == (
        "smtp", "not_offered", "LOGIN PLAIN", False)
    cred = plain.credentials.iloc[0]
    assert (cred["mechanism"], cred["username"], cred["secret_length"], cred["accepted"]) == ("plain", "alice", 6, True)
