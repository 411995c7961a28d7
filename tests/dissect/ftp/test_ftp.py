"""FTP dissector (analyzer/dissect/ftp.py): byte streams per RFC 959 / 2228 / 2428 / 4217, hostile input,
and the bundled captures (login, explicit FTPS). tshark agreement: test_plaintext_oracle.py."""

from __future__ import annotations

import time
from pathlib import Path

from support.flow_helpers import tcp_flow

import analyzer
from analyzer.dissect.base import DissectContext, FlowPayload
from analyzer.dissect.ftp import FTPDissector, parse_epsv, parse_hostport

ROOT = Path(__file__).resolve().parents[3]


def flow(client: bytes, server: bytes, port: int = 21) -> FlowPayload:
    return tcp_flow(client, server, port)


def dissector() -> FTPDissector:
    return FTPDissector().for_run(DissectContext(frames=frozenset({"credentials", "ftp_data"})))


GREETING = b"220-Welcome\r\n220 FTP ready\r\n"


def test_auth_tls_hand_over_and_feat():
    client = b"FEAT\r\nAUTH TLS\r\n"
    server = GREETING + b"211-Features:\r\n AUTH TLS\r\n PBSZ\r\n PROT\r\n211 End\r\n234 AUTH TLS successful\r\n"
    d = dissector()
    assert d.probe(flow(client, server, port=2121))
    facts = d.dissect(flow(client + b"\x16\x03\x01", server + b"\x16\x03\x03"))
    assert facts.handover is not None
    assert (facts.handover.to_server_offset, facts.handover.to_client_offset) == (len(client), len(server))
    assert facts.flow == {"app_protocol": "ftp", "ftp_banner": "Welcome", "ftp_auth": "TLS",
                          "ftp_data_channels": 0, "starttls": "completed",
                          "protection": "starttls"}
    refused = d.dissect(flow(b"AUTH SSL\r\nUSER a\r\n", GREETING + b"504 not here\r\n331 pw\r\n")).flow
    assert refused["starttls"] == "requested_refused" and refused["encrypted"] is False
    assert "starttls" not in d.dissect(flow(b"USER a\r\n", GREETING + b"331 pw\r\n")).flow  # no FEAT: unknown
    gss = d.dissect(flow(b"AUTH GSSAPI\r\nADAT abc\r\n", GREETING + b"334 Using GSSAPI\r\n235 ok\r\n")).flow
    assert gss["ftp_auth"] == "GSSAPI" and "starttls" not in gss and "encrypted" not in gss  # not TLS, maybe private


def test_login_prot_and_data_channels():
    client = (b"USER alice\r\nPASS pw d\r\nPBSZ 0\r\nPROT P\r\nPASV\r\nRETR a\r\nEPSV\r\nPROT C\r\n"
              b"PORT 10,0,0,1,4,1\r\nEPRT |2|::1|5282|\r\nQUIT\r\n")
    server = (GREETING + b"331 password\r\n230 ok\r\n200 PBSZ=0\r\n200 P\r\n"
              b"227 Entering Passive Mode (10,0,0,2,117,48)\r\n"
              b"150 opening\r\n226 done\r\n229 Extended Passive Mode Entered (|||30007|)\r\n200 C\r\n200 PORT ok\r\n"
              b"200 EPRT ok\r\n221 bye\r\n")
    facts = dissector().dissect(flow(client, server))
    assert facts.flow["ftp_prot"] == "C" and facts.flow["ftp_data_channels"] == 4
    assert facts.rows["ftp_data"] == [
        {"command": "PASV", "host": "10.0.0.2", "port": 30000, "protected": True},
        {"command": "EPSV", "host": "10.0.0.2", "port": 30007, "protected": True},
        {"command": "PORT", "host": "10.0.0.1", "port": 1025, "protected": False},
        {"command": "EPRT", "host": "::1", "port": 5282, "protected": False}]
    (row,) = facts.rows["credentials"]
    assert (row["mechanism"], row["username"], row["secret_length"], row["accepted"]) == ("user_pass", "alice", 4, True)


def test_parsers():
    assert parse_hostport(b"Entering Passive Mode (192,168,1,2,4,1).") == ("192.168.1.2", 1025)
    assert parse_hostport(b"(300,1,1,1,1,1)") is None
    assert parse_epsv(b"Entering Extended Passive Mode (|||6446|)") == (None, 6446)
    assert parse_epsv(b"|1|132.235.1.2|6275|") == ("132.235.1.2", 6275)
    assert parse_epsv(b"(|||99999|)") is None and parse_epsv(b"(") is None


def test_probe():
    d = dissector()
    assert d.probe(flow(b"USER x\r\n", b"220 hi\r\n", port=2121))
    assert d.probe(flow(b"", b"220 ProFTPD ready\r\n", port=2121))
    assert not d.probe(flow(b"EHLO x\r\n", b"220 mx ESMTP\r\n", port=25))
    assert not d.probe(flow(b"", b"220 mx ESMTP\r\n", port=2525))


def test_hostile_input_never_raises_and_is_bounded():
    d = dissector()
    clients = [b"USER " + b"x" * 100_000, b"PASV\r\n" * 30_000, b"PORT 999,1,1,1,1,1\r\n", bytes(range(256)) * 64,
               b"EPRT |||||\r\nEPRT ||\r\n"]
    servers = [GREETING + b"227 (1,2,3,4,5,6)\r\n" * 30_000, GREETING + b"150 x\r\n" * 30_000,
               b"220-" + b"\x00" * 70_000, GREETING + b"229 (|||x|)\r\n"]
    for client in clients:
        for server in servers:
            started = time.perf_counter()
            facts = d.dissect(flow(client, server))
            assert time.perf_counter() - started < 0.5
            assert facts.flow["app_protocol"] == "ftp"
            assert len(facts.rows.get("ftp_data", [])) <= 64


def test_bundled_captures():
    login = analyzer.analyze([str(ROOT / "captures" / "ftp_login.pcap")], on_problem=lambda p: None)
    control = login.flows[login.flows["server_port"] == 21].iloc[0]
    assert (control["app_protocol"], bool(control["encrypted"]), control["ftp_data_channels"]) == ("ftp", False, 1)
    data = login.flows[login.flows["server_port"] != 21].iloc[0]
    assert list(login.ftp_data[["host", "port"]].itertuples(index=False, name=None)) == [
        (data["server_ip"], data["server_port"])]  # the announced channel is the data flow
    ftps = analyzer.analyze([str(ROOT / "captures" / "ftps_explicit.pcap")], on_problem=lambda p: None)
    control = ftps.flows[ftps.flows["server_port"] == 21].iloc[0]
    assert (control["app_protocol"], control["starttls"], control["ftp_auth"], bool(control["tls_upgraded"])) == (
        "ftp", "completed", "SSL", True)
    assert len(ftps.tls) == 2  # the control channel's upgraded session and the data channel's
