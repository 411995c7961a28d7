"""The captures of the directory, management and remote-access dissectors (captures/make_net_captures.sh,
facts in captures/manifest.net.json): each capture's manifest facts against our flows and credentials,
and the same facts against tshark's own dissection of the file (the independent oracle), so neither
the manifest nor the dissectors can drift. Also: no output of any command in any format contains a
capture's secrets (user alice, passwords s3cret-<protocol>)."""

from __future__ import annotations

import base64
import functools
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

import analyzer
from analyzer.cli import main

CAPTURES = Path(__file__).resolve().parents[2] / "captures"
MANIFEST: dict[str, dict[str, Any]] = json.loads((CAPTURES / "manifest.net.json").read_text())["captures"]
# the secrets make_net_captures.sh typed (fake ones); none may appear in any output
SECRETS = {"ldap_simple_bind.pcap": ["s3cret-ldap"], "ldap_starttls.pcap": ["s3cret-ldap"],
           "snmp_v2c.pcap": ["s3cret-snmp"], "snmp_v3.pcap": ["s3cret-snmp-auth", "s3cret-snmp-priv"],
           "telnet_login.pcap": ["s3cret-telnet", "wrong-telnet"]}


@functools.cache
def analysis(name: str) -> analyzer.Analysis:
    return analyzer.analyze([str(CAPTURES / name)])


def flows(name: str, protocol: str) -> pd.DataFrame:
    f = analysis(name).flows
    return f[f["app_protocol"] == protocol].sort_values("ts_start").reset_index(drop=True)


def tshark(name: str, display: str, *fields: str) -> list[list[str]]:
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed (the oracle)")
    out = subprocess.run(["tshark", "-n", "-r", str(CAPTURES / name), "-Y", display, "-T", "fields",
                          "-E", "separator=\t", *[a for f in fields for a in ("-e", f)]],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    return [line.split("\t") for line in out.splitlines() if line.strip()]


def creds(name: str) -> list[tuple[object, ...]]:
    c = analysis(name).credentials
    return [(r.protocol, r.mechanism, None if pd.isna(r.username) else r.username, int(r.secret_length),
             None if pd.isna(r.accepted) else bool(r.accepted)) for r in c.itertuples()]


def manifest_creds(entry: dict[str, Any]) -> list[tuple[object, ...]]:
    return [(c["protocol"], c["mechanism"], c["username"], c["secret_length"], c["accepted"])
            for c in entry["credentials"]]


def test_manifest_entries_have_their_files():
    assert set(MANIFEST) == {p.name for p in CAPTURES.glob("*.pcap") if p.name in MANIFEST}
    for name, entry in MANIFEST.items():
        assert (CAPTURES / name).stat().st_size < 50_000, name
        assert entry["description"] and entry["tool"]


@pytest.mark.tshark
def test_ldap_simple_bind():
    name = "ldap_simple_bind.pcap"
    entry = MANIFEST[name]
    ours = flows(name, "ldap")
    assert len(ours) == entry["flows"]
    assert list(zip(ours["ldap_bind_kind"], ours["ldap_bind_dn"].fillna(""), ours["ldap_bind_result"],
                    strict=True)) == [(b["kind"], b["dn"], b["result"]) for b in entry["binds"]]
    assert [None if pd.isna(s) else s for s in ours["starttls"]] == entry["starttls"]
    assert set(ours["encrypted"]) == {entry["encrypted"]} and set(ours["protection"]) == {entry["protection"]}
    assert creds(name) == manifest_creds(entry)
    # tshark: bindRequest (0) name and simple password length, bindResponse (1) resultCode
    binds = tshark(name, "ldap.protocolOp == 0", "ldap.version", "ldap.name", "ldap.simple")
    assert [(b[1], len(b[2])) for b in binds] == [(b["dn"], 11 if b["kind"] == "simple" else 0)
                                                  for b in entry["binds"]]
    results = [int(r[0]) for r in tshark(name, "ldap.protocolOp == 1", "ldap.resultCode")]
    assert results == [b["result"] for b in entry["binds"]]
    rootdse = tshark(name, "ldap.protocolOp == 4", "ldap.type", "ldap.AttributeValue")
    oid = b"1.3.6.1.4.1.1466.20037".hex()  # tshark 4.0 prints attribute values in hex
    assert any(t == "supportedExtension" and oid in v.split(",") for t, v in rootdse)


@pytest.mark.tshark
def test_ldap_starttls():
    name = "ldap_starttls.pcap"
    entry = MANIFEST[name]
    (row,) = flows(name, "ldap").itertuples()
    assert (row.starttls, row.protection, row.encrypted, row.tls_version) == (
        entry["starttls"], entry["protection"], entry["encrypted"], entry["tls_version"])
    assert creds(name) == []  # the bind travelled inside TLS
    assert len(analysis(name).tls) == 1
    assert tshark(name, "ldap.protocolOp == 23", "ldap.requestName") == [["1.3.6.1.4.1.1466.20037"]]
    assert tshark(name, "ldap.protocolOp == 24", "ldap.resultCode") == [["0"]]
    assert ["0x0304"] in tshark(name, "tls.handshake.type == 2", "tls.handshake.extensions.supported_version")
    assert not tshark(name, "ldap.protocolOp == 0", "ldap.name")  # no cleartext bind


@pytest.mark.tshark
def test_snmp_v2c():
    name = "snmp_v2c.pcap"
    entry = MANIFEST[name]
    (row,) = flows(name, "snmp").itertuples()
    assert (row.snmp_version, row.snmp_pdu, row.encrypted, row.protection) == (
        entry["snmp_version"], entry["snmp_pdu"], entry["encrypted"], entry["protection"])
    assert creds(name) == manifest_creds(entry)
    oracle = tshark(name, "snmp", "snmp.version", "snmp.community", "snmp.data")
    assert [(v, len(c), d) for v, c, d in oracle] == [("1", 11, "0"), ("1", 11, "2")]  # get-request, response


@pytest.mark.tshark
def test_snmp_v3():
    name = "snmp_v3.pcap"
    entry = MANIFEST[name]
    ours = flows(name, "snmp")
    assert [(r.snmp_user, r.snmp_security_level, r.encrypted, r.protection) for r in ours.itertuples()] == [
        (s["user"], s["level"], s["encrypted"], s["protection"]) for s in entry["sessions"]]
    assert set(ours["snmp_version"]) == {"3"} and creds(name) == []
    oracle = tshark(name, "snmp", "udp.srcport", "snmp.msgUserName", "snmp.msgFlags", "snmp.encryptedPDU")
    users: dict[str, set[str]] = {}
    for _port, user, flags, encrypted_pdu in oracle:
        level = "authPriv" if int(flags, 16) & 2 else ("authNoPriv" if int(flags, 16) & 1 else "noAuthNoPriv")
        assert bool(encrypted_pdu) == (level == "authPriv")
        if user:
            users.setdefault(user, set()).add(level)
    assert users == {"alice": {"authPriv"}, "bob": {"authNoPriv"}}


@pytest.mark.tshark
def test_telnet_login():
    name = "telnet_login.pcap"
    entry = MANIFEST[name]
    (row,) = flows(name, "telnet").itertuples()
    assert (row.telnet_username, row.encrypted, row.protection) == (
        entry["telnet_username"], entry["encrypted"], entry["protection"])
    assert creds(name) == manifest_creds(entry)
    # tshark decodes the conversation as Telnet, with option negotiation from both sides
    commands = tshark(name, "telnet.cmd", "tcp.srcport")
    assert {p for (p,) in commands} == {"23", str(row.client_port)}
    text = "".join(t for (t,) in tshark(name, "telnet.data && tcp.srcport == 23", "telnet.data"))
    assert "login:" in text and "Password:" in text and "Login incorrect" in text


@pytest.mark.tshark
def test_dns():
    name = "dns_dnsmasq.pcap"
    entry = MANIFEST[name]
    ours = flows(name, "dns")
    got = [(r.transport, r.dns_query, r.dns_qtype, r.dns_rcode, r.dns_answers) for r in ours.itertuples()]
    assert got == [(q["transport"], q["query"], q["qtype"], q["rcode"], q["answers"]) for q in entry["queries"]]
    assert set(ours["encrypted"]) == {False} and set(ours["protection"]) == {"none"}
    oracle = tshark(name, "dns.flags.response == 1", "tcp.srcport", "dns.qry.name", "dns.qry.type",
                    "dns.flags.rcode", "dns.count.answers")
    assert [("tcp" if t else "udp", n, int(q), int(rc), int(a)) for t, n, q, rc, a in oracle] == got


@pytest.mark.tshark
def test_ntp():
    name = "ntp_chrony.pcap"
    entry = MANIFEST[name]
    ours = flows(name, "ntp")
    assert len(ours) >= 1 and len(ours) == len(analysis(name).flows)
    assert {(r.ntp_version, r.ntp_mode, r.ntp_stratum, r.encrypted, r.protection) for r in ours.itertuples()} == {
        (entry["ntp_version"], entry["ntp_mode"], entry["ntp_stratum"], entry["encrypted"], entry["protection"])}
    oracle = tshark(name, "ntp", "ntp.flags.vn", "ntp.flags.mode", "ntp.stratum")
    assert {tuple(r) for r in oracle} == {("4", "3", "0"), ("4", "4", str(entry["ntp_stratum"]))}


@pytest.mark.tshark
def test_syslog():
    name = "syslog_udp.pcap"
    entry = MANIFEST[name]
    ours = flows(name, "syslog")
    got = [(r.syslog_format, r.syslog_facility, r.syslog_severity) for r in ours.itertuples()]
    assert got == [(m["format"], m["facility"], m["severity"]) for m in entry["messages"]]
    oracle = tshark(name, "syslog", "syslog.facility", "syslog.level")
    assert [(int(f), int(s)) for f, s in oracle] == [(m["facility"], m["severity"]) for m in entry["messages"]]


def _forbidden(secret: str) -> list[bytes]:
    raw = secret.encode()
    return [raw, base64.b64encode(raw).rstrip(b"="), raw.hex().encode()]


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_no_output_contains_a_secret(name: str, tmp_path: Path):
    for command in ("flows", "credentials", "anomalies", "tls"):
        for fmt in ("table", "csv", "jsonl", "parquet"):
            out = tmp_path / f"{command}.{fmt}"
            args = [command, str(CAPTURES / name), "--format", fmt, "--all-columns",
                    *(["--out", str(out)] if fmt == "parquet" else [])]
            result = CliRunner().invoke(main, args)
            assert result.exit_code == 0, result.output
            blobs = [result.stdout_bytes, result.stderr_bytes, out.read_bytes() if fmt == "parquet" else b""]
            for blob in blobs:
                for secret in SECRETS[name]:
                    for needle in _forbidden(secret):
                        assert needle not in blob, (command, fmt, secret)


def test_policy_judges_the_net_captures():
    """The policy layer's rules on these flows (facts, judged there): every cleartext flow is
    cleartext-internal in a VPC of 10.81.0.0/24, the three captures with a reusable secret in the clear
    are cleartext-credentials, and SNMPv3 with privacy and LDAP after StartTLS are neither."""
    from analyzer import policy

    r = analyzer.analyze([str(CAPTURES / n) for n in sorted(MANIFEST)])
    result = policy.evaluate(r.flows, r.tls, r.certs, zones=["10.81.0.0/24"], now="2026-12-06",
                             credentials=r.credentials)
    f = result.findings.merge(result.flows[["uid", "source", "app_protocol", "encrypted"]], on="uid", how="left")
    fired: dict[str, set[str]] = {}
    for rule, src in zip(f["rule"], f["source"], strict=True):
        fired.setdefault(str(rule), set()).add(Path(str(src)).name)
    assert fired["cleartext-credentials"] == {"ldap_simple_bind.pcap", "snmp_v2c.pcap", "telnet_login.pcap"}
    clear = {n for n in MANIFEST if n != "ldap_starttls.pcap"}  # snmp_v3: bob's authNoPriv flow is cleartext
    assert fired["cleartext-internal"] == clear
    flagged = set(f.loc[f["rule"] == "cleartext-internal", "uid"])
    encrypted = set(r.flows.loc[r.flows["encrypted"].fillna(False).astype(bool), "uid"])
    assert encrypted and not flagged & encrypted
