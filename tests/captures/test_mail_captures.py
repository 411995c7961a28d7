"""The mail captures and the HTTP-to-HTTPS redirect (captures/make_mail_captures.sh, facts in
captures/manifest.mail.json): our flows and credentials equal the manifest's facts; tshark's own
dissection of the same files agrees with the manifest; and `intransit audit` raises
starttls-not-used, starttls-unavailable, cleartext-credentials and http-redirect-only exactly on the
sessions where the recording made them true (analyzer/policy/rules_plain.py, rules_cleartext).

The secrets of these captures (manifest `credentials[].password`) are covered by the leak test in
tests/dissect/test_credentials.py, which reads every manifest*.json."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner
from support.frame_helpers import cell

import analyzer
from analyzer.cli import main

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = ROOT / "captures"
_MANIFEST = CAPTURES / "manifest.mail.json"
MANIFEST: dict[str, dict[str, Any]] = json.loads(_MANIFEST.read_text())["captures"] if _MANIFEST.is_file() else {}
NAMES = sorted(MANIFEST)
VPC = "10.84.0.0/24"
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (the oracle)")
# session keys that are flow columns of ours (server_port selects the flow; handshake_complete is checked apart)
FLOW_FACTS = ("app_protocol", "encrypted", "protection", "starttls", "tls_server_name", "http_host", "http_status",
              "http_location", "http_redirect_to_https")
TSHARK_NAME = {"imap": "imap", "pop3": "pop", "http": "http", "tls": "tls"}

# What the recording did, named by hand (the rule test derives the same from the manifest facts and
# checks both agree, so neither a wrong manifest nor a wrong derivation passes alone)
RECORDED = {
    "starttls-not-used": {"imap_plain_starttls_offered.pcap", "pop3_plain_stls_offered.pcap"},
    "starttls-unavailable": {"imap_login_no_tls.pcap", "pop3_user_pass_no_tls.pcap"},
    "cleartext-credentials": {"imap_plain_starttls_offered.pcap", "pop3_plain_stls_offered.pcap",
                              "imap_login_no_tls.pcap", "pop3_user_pass_no_tls.pcap"},
    "http-redirect-only": {"http_redirect_https.pcap"},
}


def test_manifest_present():
    assert _MANIFEST.is_file(), "captures/manifest.mail.json missing: run captures/make_mail_captures.sh"
    doc = json.loads(_MANIFEST.read_text())
    assert doc["schema"] == 1 and doc["generated_by"] == "captures/make_mail_captures.sh"
    assert {"dovecot", "curl", "openssl", "tshark"} <= set(doc["tools"])
    assert len(MANIFEST) == 7
    assert all((CAPTURES / name).stat().st_size < 50_000 for name in MANIFEST)
    # every rule this file judges has at least one capture where it must fire, and one where it must not
    assert all(0 < len(names) < len(MANIFEST) for names in RECORDED.values())


@pytest.mark.parametrize("name", NAMES)
def test_flows_equal_the_manifest(name: str):
    facts = MANIFEST[name]
    result = analyzer.analyze([str(CAPTURES / name)], on_problem=lambda p: None)
    flows = result.flows
    assert len(flows) == len(facts["sessions"])
    for session in facts["sessions"]:
        rows = flows[flows["server_port"] == session["server_port"]].to_dict("records")
        assert len(rows) == 1, session["server_port"]
        row = rows[0]
        assert (row["client_ip"], row["server_ip"], row["transport"]) == (facts["client"], facts["server"], "tcp")
        for key in FLOW_FACTS:
            if key in session:
                assert cell(row[key]) == session[key], (key, row[key])
            elif key in ("starttls", "http_redirect_to_https"):  # a rule reads it: unset where not recorded
                assert cell(row[key]) is None, (key, row[key])
        if session.get("handshake_complete"):
            assert row["tls_established"] is True and row["tls_version"] == "TLS 1.3"
    creds = result.credentials
    got = [{k: cell(r[k]) for k in ("mechanism", "username", "secret_in_clear", "accepted", "secret_length")}
           for r in creds.to_dict("records")]
    want = [{"mechanism": c["mechanism"], "username": c["user"], "secret_in_clear": c["secret_in_clear"],
             "accepted": c["accepted"], "secret_length": len(c["password"])} for c in facts["credentials"]]
    assert got == want
    assert all(cell(f) is not None for f in creds["secret_fingerprint"])
    assert not any(a.startswith(("imap", "pop3", "http", "tls")) for a in result.anomalies["kind"])


def _tshark(name: str, fields: list[str], display: str) -> list[list[str]]:
    out = subprocess.run(["tshark", "-n", "-r", str(CAPTURES / name), "-Y", display, "-T", "fields",
                          "-E", "separator=\t", *[a for f in fields for a in ("-e", f)]],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def _server_bytes(name: str, port: int) -> bytes:
    """The server's cleartext bytes as tshark splits them into segments (before any TLS record)."""
    rows = _tshark(name, ["tcp.payload"], f"tcp.srcport == {port} && tcp.len > 0 && !tls")
    return b"".join(bytes.fromhex(r[0].replace(":", "")) for r in rows)


def _plain_response(b64: str) -> tuple[str, str]:
    """SASL PLAIN `authzid NUL authcid NUL passwd` (RFC 4616) -> (authcid, passwd)."""
    _authzid, user, password = base64.b64decode(b64).decode().split("\0")
    return user, password


@pytest.mark.tshark
@needs_tshark
@pytest.mark.parametrize("name", NAMES)
def test_tshark_agrees_with_the_manifest(name: str):
    """What tshark dissects in each file is what the manifest (and so our flows) says."""
    facts = MANIFEST[name]
    creds = facts["credentials"]
    streams = _tshark(name, ["tcp.stream", "tcp.dstport", "tcp.srcport", "frame.protocols"], "tcp.len > 0")
    layers: dict[int, set[str]] = {}
    for _, dst, src, protocols in streams:
        layers.setdefault(min(int(dst), int(src)), set()).update(protocols.split(":"))
    assert sorted(layers) == sorted(s["server_port"] for s in facts["sessions"])
    for session in facts["sessions"]:
        seen = layers[session["server_port"]]
        assert TSHARK_NAME[session["app_protocol"]] in seen
        assert ("tls" in seen) == session["encrypted"]
        if "tls_server_name" in session:
            port = session["server_port"]
            hellos = _tshark(name, ["tls.handshake.extensions_server_name"],
                             f"tls.handshake.type == 1 && tcp.dstport == {port}")
            assert [h[0] for h in hellos] == [session["tls_server_name"]]
            server_hellos = _tshark(name, ["frame.number"], f"tls.handshake.type == 2 && tcp.srcport == {port}")
            assert len(server_hellos) == 1 == session["handshake_complete"]
        proto, state = session["app_protocol"], session.get("starttls")
        if proto == "imap":
            commands = [r[0] for r in _tshark(name, ["imap.request.command"], "imap.request.command")]
            assert ("STARTTLS" in commands) == (state == "completed")
            greeting = _server_bytes(name, 143).split(b"\r\n", 1)[0]
            assert greeting.startswith(b"* OK [CAPABILITY ")
            assert (b" STARTTLS " in greeting) == (state in ("completed", "offered_not_used"))
            logins = _tshark(name, ["imap.request.username", "imap.request.password"], "imap.request.command == LOGIN")
            plain = [_plain_response(r[0].split()[-1]) for r in _tshark(name, ["imap.request"],
                                                                         "imap.request.command == AUTHENTICATE")]
            seen_creds = [(r[0], r[1], "login_command") for r in logins] + [(u, p, "plain") for u, p in plain]
            assert seen_creds == [(c["user"], c["password"], c["mechanism"]) for c in creds]
            if state == "completed":  # nothing but TLS after the tagged OK: no command in the clear after STARTTLS
                assert commands[-1] == "STARTTLS"
        elif proto == "pop3":
            rows = _tshark(name, ["pop.request.command", "pop.request.parameter"], "pop.request")
            commands = [r[0] for r in rows]
            assert ("STLS" in commands) == (state == "completed")
            capa = _server_bytes(name, 110)
            assert b"\r\nSASL PLAIN LOGIN\r\n" in capa  # tshark's segments carry the CAPA list
            assert (b"\r\nSTLS\r\n" in capa) == (state in ("completed", "offered_not_used"))
            users = [r[1] for r in rows if r[0] == "USER"]
            passwords = [r[1] for r in rows if r[0] == "PASS"]
            seen_creds = [(u, p, "user_pass") for u, p in zip(users, passwords, strict=True)]
            if "AUTH" in commands:  # the client's next line is the SASL PLAIN response
                at = commands.index("AUTH")
                assert rows[at][1] == "PLAIN"
                seen_creds += [(*_plain_response(commands[at + 1]), "plain")]
            assert seen_creds == [(c["user"], c["password"], c["mechanism"]) for c in creds]
            if state == "completed":
                assert commands[-1] == "STLS"
        elif proto == "http":
            requests = _tshark(name, ["http.host", "http.request.uri"], "http.request")
            responses = _tshark(name, ["http.response.code", "http.location"], "http.response")
            assert [r[0] for r in requests] == [session["http_host"]]
            assert responses == [[str(session["http_status"]), session["http_location"]]]
            code, location = responses[0]
            same_host = location == f"https://{session['http_host']}{requests[0][1]}"
            assert session["http_redirect_to_https"] == (300 <= int(code) < 400 and same_host)
            # the redirect is followed: the TLS session goes to the same host on 443
            followed = [s for s in facts["sessions"] if s["app_protocol"] == "tls"]
            assert [s["tls_server_name"] for s in followed] == [session["http_host"]]


def _audit(name: str) -> pd.DataFrame:
    result = CliRunner().invoke(main, ["audit", str(CAPTURES / name), "--vpc", VPC, "--format", "csv",
                                       "--fail-on", "never", "-q"])
    assert result.exit_code == 0, result.output
    return pd.read_csv(io.StringIO(result.stdout), dtype=str, keep_default_na=False)


def _expected(facts: dict[str, Any]) -> set[tuple[str, int]]:
    """(rule, server_port) the recorded facts make true (analyzer/policy/rules_plain.py, cleartext-credentials)."""
    out = set()
    for s in facts["sessions"]:
        clear = s["encrypted"] is False
        if clear and s.get("starttls") == "offered_not_used":
            out.add(("starttls-not-used", s["server_port"]))
        if clear and s.get("starttls") in ("not_offered", "requested_refused"):
            out.add(("starttls-unavailable", s["server_port"]))
        if clear and s.get("http_redirect_to_https"):
            out.add(("http-redirect-only", s["server_port"]))
        if clear and s["app_protocol"] in ("imap", "pop3") and any(c["secret_in_clear"] for c in facts["credentials"]):
            out.add(("cleartext-credentials", s["server_port"]))
        if clear:
            out.add(("cleartext-internal", s["server_port"]))
    return out


@pytest.mark.parametrize("name", NAMES)
def test_audit_fires_where_the_recording_says(name: str):
    facts = MANIFEST[name]
    findings = _audit(name)
    judged = {*RECORDED, "cleartext-internal"}
    got = {(r["rule"], int(r["server_port"])) for r in findings.to_dict("records") if r["rule"] in judged}
    assert got == _expected(facts)
    assert {rule for rule, names in RECORDED.items() if name in names} == {rule for rule, _ in got} - {
        "cleartext-internal"}
    # each judged rule fires once per session it names (one finding per flow)
    assert len(findings[findings["rule"].isin(list(judged))]) == len(got)
