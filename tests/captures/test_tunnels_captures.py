"""The "tunnels" group's bundled captures (captures/make_tunnels_captures.sh: samba, wireguard-go,
openvpn in network namespaces): our flows against captures/manifest.tunnels.json, and both against
tshark's own dissection of the same files (the independent oracle)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

import analyzer
from analyzer.report import open_output

CAPTURES = Path(__file__).resolve().parents[2] / "captures"
MANIFEST = json.loads((CAPTURES / "manifest.tunnels.json").read_text())["captures"]
TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (apt-get install tshark)")
DESCRIPTIVE = {"description", "tool", "password", "message_types", "session_encrypt", "username", "auth",
               "control_wrap"}


def tshark(name: str, fields: list[str], *extra: str) -> list[list[str]]:
    assert TSHARK is not None
    out = subprocess.run([TSHARK, "-r", str(CAPTURES / name), "-T", "fields", *extra,
                          *[a for f in fields for a in ("-e", f)]], capture_output=True, text=True, check=True,
                         timeout=120).stdout
    return [line.split("\t") for line in out.splitlines() if line.strip("\t")]


def only_flow(name: str) -> tuple[Any, Any]:
    r = analyzer.analyze([str(CAPTURES / name)])
    assert len(r.flows) == 1, r.flows
    return r, next(r.flows.itertuples())


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_flow_equals_the_manifest(name: str) -> None:
    facts = MANIFEST[name]
    r, flow = only_flow(name)
    expected = {k: v for k, v in facts.items() if k not in DESCRIPTIVE}
    got = {"transport": flow.transport, "client": flow.client_ip, "server": flow.server_ip,
           "server_port": flow.server_port, "app_protocol": flow.app_protocol, "encrypted": flow.encrypted,
           "protection": flow.protection, "client_port": flow.client_port, "smb_dialect": flow.smb_dialect}
    assert {k: got[k] for k in expected} == expected
    assert r.flows.undecided_reason.isna().all() and r.anomalies.empty
    if "session_encrypt" in facts:
        assert (flow.smb_session_encrypt, flow.smb_auth) == (facts["session_encrypt"], facts["auth"])
        [cred] = r.credentials.itertuples()
        assert (cred.username, cred.mechanism, cred.secret_in_clear) == (facts["username"], "ntlm", False)
    if "control_wrap" in facts:
        assert flow.openvpn_control_wrap == facts["control_wrap"]


@needs_tshark
@pytest.mark.parametrize("name", sorted(n for n in MANIFEST if n.startswith("smb")))
def test_smb_against_tshark(name: str) -> None:
    _, flow = only_flow(name)
    rows = tshark(name, ["smb2.cmd", "smb2.flags.response", "smb2.dialect", "smb2.session_flags",
                         "ntlmssp.auth.username", "ntlmssp.auth.domain", "smb2.protocol_id"], "-Y", "smb2")
    negotiate = [r for r in rows if r[0] == "0" and r[1] == "1"]
    assert negotiate and negotiate[-1][2] == "0x0311" and flow.smb_dialect == "3.1.1"
    setup = [r for r in rows if r[0] == "1" and r[1] == "1" and r[3]]
    assert bool(int(setup[-1][3], 16) & 4) == bool(flow.smb_session_encrypt)
    transforms = sum(1 for r in rows if r[6] == "0xfd534d42")
    assert transforms == flow.smb_encrypted_messages and (transforms > 0) == bool(flow.encrypted)
    users = {(r[5], r[4]) for r in rows if r[4]}
    assert users == {("ITC", "alice")}


@needs_tshark
def test_wireguard_against_tshark() -> None:
    _, flow = only_flow("wireguard.pcap")
    rows = tshark("wireguard.pcap", ["wg.type", "wg.sender"], "-Y", "wg")
    types = [int(r[0]) for r in rows]
    assert sorted(set(types)) == MANIFEST["wireguard.pcap"]["message_types"]
    assert (types.count(1), types.count(2), types.count(4)) == (
        flow.wireguard_initiations, flow.wireguard_responses, flow.wireguard_data_messages)
    senders = {int(r[0]): int(r[1], 16) for r in rows if r[1]}
    assert (senders[1], senders[2]) == (int(flow.wireguard_initiator_index, 16),
                                        int(flow.wireguard_responder_index, 16))


@needs_tshark
@pytest.mark.parametrize("name", sorted(n for n in MANIFEST if n.startswith("openvpn")))
def test_openvpn_against_tshark(name: str) -> None:
    _, flow = only_flow(name)
    rows = tshark(name, ["ip.src", "openvpn.opcode", "openvpn.sessionid", "openvpn.hmac"],
                  "-d", "udp.port==1194,openvpn", "-d", "tcp.port==1194,openvpn", "-Y", "openvpn")
    opcodes = [int(r[1], 16) for r in rows]
    assert opcodes[0] == 7 and 8 in opcodes and 9 in opcodes
    assert sum(1 for o in opcodes if o in (6, 9)) >= flow.openvpn_data_packets > 0  # UDP: the first 32 are read
    client_sid = next(int(r[2]) for r in rows if r[0] == flow.client_ip and r[2])
    server_sid = next(int(r[2]) for r in rows if r[0] == flow.server_ip and r[2])
    assert (client_sid, server_sid) == (int(flow.openvpn_client_session_id, 16),
                                        int(flow.openvpn_server_session_id, 16))
    assert any(r[3] for r in rows) == (flow.openvpn_control_wrap == "tls-auth")


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_no_password_in_any_output(tmp_path: Path, fmt: str) -> None:
    """NTLM sends a challenge response, never the password: it is in no capture byte nor output."""
    import base64

    paths = [str(CAPTURES / n) for n in MANIFEST if "password" in MANIFEST[n]]
    secrets = {MANIFEST[n]["password"] for n in MANIFEST if "password" in MANIFEST[n]}
    r = analyzer.analyze(paths)
    text = ""
    for frame in ("flows", "credentials", "anomalies"):
        out = tmp_path / f"{frame}.{fmt}"
        sink = open_output(fmt, str(out), r.schemas[frame])
        sink.write(r[frame])
        sink.close()
        text += out.read_text()
    assert "alice" in text
    for secret in secrets:
        for form in (secret, base64.b64encode(secret.encode()).decode(), secret.encode("utf-16-le").hex()):
            assert form not in text
        for p in paths:
            raw = Path(p).read_bytes()
            assert secret.encode() not in raw and secret.encode("utf-16-le") not in raw


def test_no_other_bundled_flow_is_claimed() -> None:
    """The tunnel probes steal nothing: on every other bundled capture, no flow is smb, ike, esp,
    wireguard or openvpn (and ftp-data only on the FTP capture's announced data channel)."""
    others = sorted(p for p in CAPTURES.iterdir()
                    if p.name.endswith((".pcap", ".pcapng", ".pcap.gz")) and p.name not in MANIFEST)
    flows = analyzer.analyze([str(p) for p in others], on_problem=lambda p: None).flows
    mine = flows[flows.app_protocol.isin(["smb", "ike", "esp", "wireguard", "openvpn", "ftp-data"])]
    assert [(src.rsplit("/", 1)[-1], app) for src, app in zip(mine.source, mine.app_protocol, strict=True)] == [
        ("ftp_login.pcap", "ftp-data")]


def test_smb_without_encryption_is_judged_cleartext_and_with_it_is_not() -> None:
    """The policy's view of the SMB captures (the policy tests judge only manifest.json's captures)."""
    judged = analyzer.audit([str(CAPTURES / "smb3_plain.pcap"), str(CAPTURES / "smb3_encrypted.pcap")],
                            vpc=["10.83.0.0/24"])
    by_source = {Path(str(s)).name: f for s, f in judged.flows.groupby("source")}
    rules = {Path(str(s)).name: set(f["rule"]) for s, f in judged.findings.groupby(
        judged.findings["uid"].map(dict(zip(judged.flows["uid"], judged.flows["source"], strict=True))))}
    assert set(by_source["smb3_plain.pcap"]["protection"]) == {"none"}
    assert "cleartext-internal" in rules["smb3_plain.pcap"]
    assert set(by_source["smb3_encrypted.pcap"]["protection"]) == {"smb3"}
    assert not {"cleartext-internal", "cleartext-egress"} & rules.get("smb3_encrypted.pcap", set())
