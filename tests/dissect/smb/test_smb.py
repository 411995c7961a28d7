"""SMB dissector (analyzer/dissect/smb.py): crafted SMB1/SMB2/SMB3 messages per MS-SMB2 / MS-CIFS /
MS-NLMP, hostile input, and the bundled samba captures (captures/smb3_*.pcap; their tshark
agreement is in tests/captures/test_tunnels_captures.py)."""

from __future__ import annotations

import random
import struct
import time
from pathlib import Path

import pytest
from support.flow_helpers import tcp_flow
from support.tunnel_helpers import damage

import analyzer
from analyzer.dissect.base import DissectContext, FlowPayload, StreamPrefix
from analyzer.dissect.credentials import CREDENTIALS
from analyzer.dissect.smb import SMBDissector, ntlm_identity, records

CAPTURES = Path(__file__).resolve().parents[3] / "captures"


def dissector() -> SMBDissector:
    return SMBDissector().for_run(DissectContext(frames=frozenset({"credentials"})))


def nb(msg: bytes) -> bytes:
    """A NetBIOS session message around `msg` (MS-SMB2 2.1: 0x00 and a 24-bit length)."""
    return b"\x00" + len(msg).to_bytes(3, "big") + msg


def smb2(command: int, body: bytes, *, response: bool = False, status: int = 0, next_command: int = 0,
         session: int = 0) -> bytes:
    header = struct.pack("<4sHHIHHII8s4sI8s16s", b"\xfeSMB", 64, 0, status, command, 1, int(response),
                         next_command, b"\0" * 8, b"\0" * 4, 0, session.to_bytes(8, "little"), b"\0" * 16)
    assert len(header) == 64
    return header + body


def context(kind: int, data: bytes) -> bytes:
    raw = struct.pack("<HHI", kind, len(data), 0) + data
    return raw + b"\0" * (-len(raw) % 8)


def negotiate_request(dialects: list[int], ciphers: list[int] | None = None) -> bytes:
    fixed_len = 36 + 2 * len(dialects)
    pad = b"\0" * (-(64 + fixed_len) % 8)
    contexts = b""
    if ciphers is not None:
        contexts = context(2, struct.pack("<H", len(ciphers)) + b"".join(struct.pack("<H", c) for c in ciphers))
    offset = 64 + fixed_len + len(pad) if contexts else 0
    body = struct.pack("<HHHHI16sIHH", 36, len(dialects), 1, 0, 0x7F, b"g" * 16, offset, 1 if contexts else 0, 0)
    body += b"".join(struct.pack("<H", d) for d in dialects)
    return smb2(0, body + (pad + contexts if contexts else b""))


def negotiate_response(dialect: int, *, security_mode: int = 1, capabilities: int = 0,
                       cipher: int | None = None) -> bytes:
    contexts = b"" if cipher is None else context(2, struct.pack("<HH", 1, cipher))
    offset = 64 + 64 + 8 if contexts else 0  # fixed body (64 bytes, padded to 8) + security buffer
    body = struct.pack("<HHHH16sIIIIQQHHI", 65, security_mode, dialect, 1 if contexts else 0, b"s" * 16,
                       capabilities, 65536, 65536, 65536, 0, 0, 128, 8, offset)
    body += b"SPNEGO\0\0"
    return smb2(0, body + contexts, response=True)


def ntlm_authenticate(domain: str, user: str, unicode: bool = True) -> bytes:
    enc = "utf-16-le" if unicode else "latin-1"
    d, u, w = domain.encode(enc), user.encode(enc), "WS".encode(enc)
    payload_at = 72
    fields = b""
    blobs = b""
    for value in (b"lm", b"ntresponse", d, u, w, b""):
        fields += struct.pack("<HHI", len(value), len(value), payload_at + len(blobs))
        blobs += value
    head = b"NTLMSSP\0" + struct.pack("<I", 3) + fields[:48] + struct.pack("<I", 1 if unicode else 0)
    head = head + b"\0" * (payload_at - len(head))
    return b"\xa1\x82spnego-wrapper" + head + blobs


def session_setup_request(blob: bytes) -> bytes:
    return smb2(1, struct.pack("<HBBIIHHQ", 25, 0, 1, 0, 0, 64 + 24, len(blob), 0) + blob)


def session_setup_response(flags: int, status: int = 0) -> bytes:
    return smb2(1, struct.pack("<HHHH", 9, flags, 72, 0), response=True, status=status, session=7)


def transform(size: int = 80) -> bytes:
    return b"\xfdSMB" + b"\x11" * 16 + b"\x22" * 16 + struct.pack("<IHHQ", size, 0, 1, 7) + b"\x99" * size


def session(client: list[bytes], server: list[bytes], port: int = 445) -> FlowPayload:
    return tcp_flow(b"".join(nb(m) for m in client), b"".join(nb(m) for m in server), port)


def test_encrypted_session_311():
    client = [negotiate_request([0x202, 0x210, 0x300, 0x302, 0x311], [2, 1, 4, 3]),
              session_setup_request(ntlm_authenticate("ITC", "alice")), transform(), transform()]
    server = [negotiate_response(0x311, cipher=2), session_setup_response(0x4), transform()]
    d = dissector()
    fp = session(client, server)
    assert d.probe(fp)
    facts = d.dissect(fp)
    assert facts.flow == {
        "app_protocol": "smb", "smb_version": "smb2", "smb_dialect": "3.1.1",
        "smb_encrypted_messages": 3, "smb_dialects_offered": "2.0.2,2.1,3.0,3.0.2,3.1.1",
        "smb_ciphers_offered": "AES-128-GCM,AES-128-CCM,AES-256-GCM,AES-256-CCM",
        "smb_encryption_capable": True, "smb_cipher": "AES-128-GCM", "smb_session_encrypt": True,
        "smb_signing_required": False, "smb_auth": "ntlm", "encrypted": True, "protection": "smb3"}
    [row] = facts.rows["credentials"]
    assert row == {"protocol": "smb", "mechanism": "ntlm", "username": "ITC\\alice", "secret_in_clear": False,
                   "secret_length": None, "secret_fingerprint": None, "accepted": True}


def test_cleartext_session_with_signing_required_is_not_encrypted():
    client = [negotiate_request([0x300, 0x302]), session_setup_request(ntlm_authenticate("", "bob", unicode=False)),
              smb2(3, b"\x09\0" + b"\0" * 7)]  # TREE_CONNECT in the clear
    server = [negotiate_response(0x302, security_mode=3, capabilities=0x40),
              session_setup_response(0, status=0), smb2(3, b"\x10\0" + b"\0" * 14, response=True)]
    flow = dissector().dissect(session(client, server)).flow
    assert flow["smb_dialect"] == "3.0.2" and flow["smb_encryption_capable"] is True
    assert flow["smb_signing_required"] is True  # integrity only
    assert (flow["encrypted"], flow["protection"]) == (False, "none")
    assert "undecided_reason" not in flow


def test_failed_login_and_negotiation_only():
    client = [negotiate_request([0x311], [1]), session_setup_request(ntlm_authenticate("D", "eve"))]
    server = [negotiate_response(0x311, cipher=1), session_setup_response(0, status=0xC000006D)]
    facts = dissector().dissect(session(client, server))
    assert facts.flow["undecided_reason"] == "handshake_incomplete" and "encrypted" not in facts.flow
    assert facts.flow["protection"] == "smb3"  # the server offered encryption; nothing followed
    assert facts.rows["credentials"][0]["accepted"] is False
    assert facts.rows["credentials"][0]["username"] == "D\\eve"


def test_anonymous_and_kerberos():
    anon = dissector().dissect(session([negotiate_request([0x210]), session_setup_request(ntlm_authenticate("", ""))],
                                       [negotiate_response(0x210), session_setup_response(0x2)]))
    assert anon.flow["smb_auth"] == "anonymous" and "credentials" not in anon.rows
    krb = b"\x60\x82spnego\x06\x09\x2a\x86\x48\x86\xf7\x12\x01\x02\x02ap-req"
    flow = dissector().dissect(session([negotiate_request([0x311]), session_setup_request(krb)],
                                       [negotiate_response(0x311)])).flow
    assert flow["smb_auth"] == "kerberos"


def test_smb1_only_server():
    dialects = b"".join(b"\x02" + n + b"\0" for n in (b"PC NETWORK PROGRAM 1.0", b"LANMAN1.0", b"NT LM 0.12"))
    header = b"\xffSMB\x72" + b"\0" * 27
    request = header + b"\x00" + struct.pack("<H", len(dialects)) + dialects
    response = header + b"\x11" + struct.pack("<H", 2) + b"\0" * 40
    flow = dissector().dissect(session([request], [response], port=139)).flow
    assert (flow["smb_version"], flow["smb_dialect"]) == ("smb1", "NT LM 0.12")
    assert (flow["encrypted"], flow["protection"]) == (False, "none")


def test_smb1_negotiate_answered_by_smb2_wildcard():
    dialects = b"".join(b"\x02" + n + b"\0" for n in (b"NT LM 0.12", b"SMB 2.002", b"SMB 2.???"))
    request = b"\xffSMB\x72" + b"\0" * 27 + b"\x00" + struct.pack("<H", len(dialects)) + dialects
    client = [request, negotiate_request([0x202, 0x210, 0x300])]
    server = [negotiate_response(0x2FF), negotiate_response(0x300, capabilities=0x40)]
    flow = dissector().dissect(session(client, server)).flow
    assert (flow["smb_version"], flow["smb_dialect"], flow["smb_encryption_capable"]) == ("smb2", "3.0", True)


def test_netbios_session_request_on_139_and_compound_chain():
    request = b"\x81\x00\x00\x44" + b"\x20" + b"A" * 32 + b"\0" + b"\x20" + b"B" * 32 + b"\0"
    first = smb2(5, b"\x39\0" + b"\0" * 55, next_command=120)  # CREATE, then a chained READ
    chained = first + b"\0" * (120 - len(first)) + smb2(8, b"\x31\0" + b"\0" * 47)
    fp = tcp_flow(request + nb(negotiate_request([0x210])) + nb(chained),
                  b"\x82\x00\x00\x00" + nb(negotiate_response(0x210)), 139)
    d = dissector()
    assert d.probe(fp)
    flow = d.dissect(fp).flow
    assert flow["smb_dialect"] == "2.1" and flow["encrypted"] is False


def test_mid_stream_transforms_only():
    fp = tcp_flow(nb(transform()), nb(transform()), 445)
    assert dissector().probe(fp)
    flow = dissector().dissect(fp).flow
    assert (flow["encrypted"], flow["smb_encrypted_messages"], flow["protection"]) == (True, 2, "smb3")


def test_probe_rejects_other_protocols():
    d = dissector()
    assert not d.probe(tcp_flow(b"GET / HTTP/1.1\r\n\r\n", b"", 445))
    assert not d.probe(tcp_flow(b"\x16\x03\x01\x00\x10" + b"\0" * 16, b"", 445))
    assert not d.probe(tcp_flow(b"\x00\x00\x00\x10" + b"\0" * 16, b"", 445))
    assert not d.probe(tcp_flow(b"\x81\x00\x00\x44", b"", 139))  # a session request cut short


def test_ntlm_identity():
    assert ntlm_identity(ntlm_authenticate("DOM", "usr")) == ("DOM", "usr")
    assert ntlm_identity(ntlm_authenticate("DOM", "usr", unicode=False)) == ("DOM", "usr")
    assert ntlm_identity(b"NTLMSSP\0\x01\0\0\0") is None  # NEGOTIATE, not AUTHENTICATE
    assert ntlm_identity(b"NTLMSSP\0\x03\0\0\0" + b"\xff" * 20) == ("", "")  # fields past the end


def test_records_are_bounded():
    assert records(b"\x00\x00\x00\x02ab\x00\x00\x00\x05cd") == [b"ab", b"cd"]
    assert records(b"\x17junk") == []
    assert len(records(b"\x00\x00\x00\x00" * 10000)) == 256


def test_damaged_sessions_never_raise():
    rng = random.Random("smb")
    client = b"".join(nb(m) for m in (negotiate_request([0x202, 0x311], [1, 2]),
                                      session_setup_request(ntlm_authenticate("ITC", "alice")), transform()))
    server = b"".join(nb(m) for m in (negotiate_response(0x311, cipher=2), session_setup_response(4), transform()))
    d = dissector()
    worst = 0.0
    for _ in range(1500):
        fp = FlowPayload(uid="C", transport="tcp", client_ip="a", server_ip="b", client_port=1, server_port=445,
                         ts_start=0.0, to_server=StreamPrefix(damage(rng, client, edits=8)),
                         to_client=StreamPrefix(damage(rng, server, edits=8)))
        d.probe(fp)
        started = time.perf_counter()
        facts = d.dissect(fp)
        worst = max(worst, time.perf_counter() - started)
        assert facts.flow["app_protocol"] == "smb"
        for row in facts.rows.get("credentials", []):
            assert set(row) | {"uid"} == set(CREDENTIALS.schema)
    assert worst < 0.05


@pytest.mark.parametrize(("name", "encrypted", "protection", "session_encrypt"),
                         [("smb3_encrypted.pcap", True, "smb3", True), ("smb3_plain.pcap", False, "none", False)])
def test_samba_captures(name: str, encrypted: bool, protection: str, session_encrypt: bool):
    r = analyzer.analyze([str(CAPTURES / name)])
    [flow] = r.flows.itertuples()
    assert (flow.app_protocol, flow.encrypted, flow.protection) == ("smb", encrypted, protection)
    assert (flow.smb_dialect, flow.smb_session_encrypt, flow.smb_auth) == ("3.1.1", session_encrypt, "ntlm")
    assert (flow.smb_encrypted_messages > 0) == encrypted
    [cred] = r.credentials.itertuples()
    assert (cred.protocol, cred.mechanism, cred.username, cred.secret_in_clear, cred.accepted) == (
        "smb", "ntlm", "ITC\\alice", False, True)
    assert r.anomalies.empty
