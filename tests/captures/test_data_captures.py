"""The data-store and broker captures (captures/make_data_captures.sh, facts in
captures/manifest.data.json): our flows and credentials equal the manifest's facts; tshark's own
dissection of the same files agrees with the manifest. That no output of any command in any format
contains a captured password or its base64 form is tests/dissect/test_credentials.py's check, over
every bundled manifest (this group's among them)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.frame_helpers import cell

import analyzer

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = ROOT / "captures"
_MANIFEST = CAPTURES / "manifest.data.json"
MANIFEST: dict[str, dict[str, Any]] = json.loads(_MANIFEST.read_text())["captures"] if _MANIFEST.is_file() else {}
NAMES = sorted(MANIFEST)
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (the oracle)")
# manifest keys that are flow columns of ours (the rest are descriptive or checked below)
FLOW_FACTS = ("app_protocol", "encrypted", "protection", "starttls", "postgresql_user", "postgresql_database",
              "postgresql_application_name", "postgresql_auth", "mysql_user", "mysql_database", "mysql_auth_plugin",
              "xmpp_domain", "xmpp_starttls_required")


def test_manifest_present():
    assert _MANIFEST.is_file(), "captures/manifest.data.json missing: run captures/make_data_captures.sh"
    assert len(MANIFEST) >= 8
    assert all((CAPTURES / name).stat().st_size < 50_000 for name in MANIFEST)


@pytest.mark.parametrize("name", NAMES)
def test_flows_equal_the_manifest(name: str):
    facts = MANIFEST[name]
    result = analyzer.analyze([str(CAPTURES / name)], on_problem=lambda p: None)
    flows = result.flows[result.flows["server_port"] == facts["server_port"]].sort_values("ts_start")
    assert len(flows) == facts.get("flows", 1)
    for row in flows.to_dict("records"):
        assert (row["client_ip"], row["server_ip"]) == (facts["client"], facts["server"])
        for key in FLOW_FACTS:
            if key in facts:
                assert cell(row[key]) == facts[key], (key, row[key])
        if facts.get("handshake_complete"):
            assert row["tls_established"] is True and row["tls_version"] == "TLS 1.3"
    if "mqtt_client_ids" in facts:
        assert list(flows["mqtt_client_id"]) == facts["mqtt_client_ids"]
    if "memcached_commands" in facts:
        assert list(flows["memcached_commands"]) == facts["memcached_commands"]
        assert set(flows["memcached_version"]) == {facts["memcached_version"]}
    creds = result.credentials.merge(flows[["uid", "ts_start"]], on="uid").sort_values("ts_start")
    got = [{k: cell(r[k]) for k in ("mechanism", "username", "secret_in_clear", "accepted")}
           for r in creds.to_dict("records")]
    want = [{k: c[k] for k in ("mechanism", "username", "secret_in_clear", "accepted")} for c in facts["credentials"]]
    assert got == want
    lengths = [cell(r) for r in creds["secret_length"]]
    assert lengths == [len(c["secret"]) if "secret" in c else None for c in facts["credentials"]]
    assert not any(a.startswith(("postgresql", "mysql", "redis", "mqtt", "memcached", "xmpp"))
                   for a in result.anomalies["kind"])


def _tshark(name: str, fields: list[str], display: str) -> list[list[str]]:
    out = subprocess.run(["tshark", "-n", "-r", str(CAPTURES / name), "-Y", display, "-T", "fields",
                          "-E", "separator=\t", *[a for f in fields for a in ("-e", f)]],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


@pytest.mark.tshark
@needs_tshark
@pytest.mark.parametrize("name", NAMES)
def test_tshark_agrees_with_the_manifest(name: str):
    """What tshark dissects in each file is what the manifest (and so our flows) says."""
    facts = MANIFEST[name]
    proto = facts["app_protocol"]
    streams = _tshark(name, ["tcp.stream", "frame.protocols"], "tcp.len > 0")
    layers = {s: set() for s, _ in streams}
    for s, protocols in streams:
        layers[s].update(protocols.split(":"))
    tshark_name = {"postgresql": "pgsql", "mysql": "mysql", "redis": "resp", "mqtt": "mqtt",
                   "memcached": "memcache", "xmpp": "xmpp"}[proto]
    assert len(layers) == facts.get("flows", 1) and all(tshark_name in v for v in layers.values())
    assert all(("tls" in v) == facts["encrypted"] for v in layers.values())
    creds = facts["credentials"]
    if proto == "postgresql":
        rows = _tshark(name, ["pgsql.type", "pgsql.authtype", "pgsql.parameter_name", "pgsql.parameter_value",
                              "pgsql.password"], "pgsql")
        types = [r[0] for r in rows]
        assert ("SSL request" in types) == ("starttls" in facts)
        startup = next((r for r in rows if r[0] == "Startup message"), None)
        if "postgresql_user" in facts:
            assert startup is not None
            params = dict(zip(startup[2].split(","), startup[3].split(","), strict=True))
            assert params["user"] == facts["postgresql_user"] and params["database"] == facts["postgresql_database"]
            auth = {"3": "cleartext", "5": "md5", "10": "scram-sha-256"}[next(r[1] for r in rows if r[1])]
            assert auth == facts["postgresql_auth"]
        else:
            assert startup is None  # inside TLS
        assert [r[4] for r in rows if r[4]] == [c["secret"] for c in creds if "secret" in c]
    elif proto == "mysql":
        rows = _tshark(name, ["mysql.version", "mysql.caps.sl", "mysql.user", "mysql.schema",
                              "mysql.client_auth_plugin"], "mysql.caps.sl")
        server_ssl, client_ssl = rows[0][1] == "1", rows[1][1] == "1"
        state = "completed" if client_ssl else "offered_not_used" if server_ssl else "not_offered"
        assert state == facts["starttls"]
        assert rows[1][2:5] == ([facts["mysql_user"], facts["mysql_database"], facts["mysql_auth_plugin"]]
                                if "mysql_user" in facts else ["", "", ""])
    elif proto == "redis":
        rows = _tshark(name, ["tcp.stream", "resp.bulk_string.value"], "resp && tcp.dstport == 6379")
        sent = [[bytes.fromhex(x).decode() for x in r[1].split(",")] for r in rows]
        logins = [args[1:] for args in sent if args[0] == "AUTH"]  # tshark's view of each AUTH command
        assert [login[-1] for login in logins] == [c["secret"] for c in creds]
        assert [login[0] if len(login) == 2 else None for login in logins] == [c["username"] for c in creds]
    elif proto == "mqtt":
        rows = _tshark(name, ["mqtt.ver", "mqtt.clientid", "mqtt.username", "mqtt.passwd_len"], "mqtt.msgtype == 1")
        assert [r[1] for r in rows] == facts["mqtt_client_ids"]
        assert [(r[2], int(r[3])) for r in rows] == [(c["username"], len(c["secret"])) for c in creds]
    elif proto == "memcached":
        rows = _tshark(name, ["tcp.stream", "memcache.command"], "memcache.command && tcp.dstport == 11211")
        per_stream = [sum(1 for r in rows if r[0] == s) for s in sorted({r[0] for r in rows}, key=int)]
        assert per_stream == facts["memcached_commands"]
    elif proto == "xmpp":
        def frames(display: str) -> int:
            return len(_tshark(name, ["frame.number"], display))
        # (tshark 4.0 does not dissect the features that share a segment with the stream header: the
        # offer is checked by our test above only)
        assert frames("xmpp.starttls") == frames("xmpp.proceed") == (facts["starttls"] == "completed")
        assert frames("xmpp.auth") == len(creds)
        assert frames("xmpp.success") == sum(c["accepted"] for c in creds)
