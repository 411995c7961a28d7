"""The captures of TLS behind proxies (captures/make_proxy_captures.sh, facts in captures/manifest.proxy.json):
SOCKS 4/4a/5 through `ssh -D` and microsocks, HTTP CONNECT through tinyproxy, and server-only cuts.
Each capture's manifest facts against our flows, tls rows and credentials, and the same facts against
tshark's own dissection of the (two-sided) file, so neither the manifest nor the dissectors can drift.
A server-only cut must give the facts its side carries equal to the two-sided run's. No output of any
command in any format contains the SOCKS passwords."""

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
MANIFEST: dict[str, dict[str, Any]] = json.loads((CAPTURES / "manifest.proxy.json").read_text())["captures"]
CUTS = {"socks5_ssh_tls_server_only.pcap": "socks5_ssh_tls.pcap",
        "http_connect_tls_server_only.pcap": "http_connect_tls.pcap"}
VERSIONS = {"0x0303": "TLS 1.2", "0x0304": "TLS 1.3"}


@functools.cache
def analysis(name: str) -> analyzer.Analysis:
    return analyzer.analyze([str(CAPTURES / name)])


def flows(name: str) -> pd.DataFrame:
    return analysis(name).flows.sort_values("ts_start").reset_index(drop=True)


def value(x: object) -> object:
    return None if x is None or x is pd.NA or (isinstance(x, float) and pd.isna(x)) else x


def tshark(name: str, display: str, *fields: str, decode: str | None = None) -> list[list[str]]:
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed (the oracle)")
    args = ["tshark", "-n", "-r", str(CAPTURES / name), *(["-d", decode] if decode else []), "-Y", display,
            "-T", "fields", "-E", "separator=\t", *[a for f in fields for a in ("-e", f)]]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120, check=True).stdout
    return [line.split("\t") for line in out.splitlines() if line.strip()]


def test_manifest_entries_have_their_files():
    assert set(MANIFEST) == {p.name for p in CAPTURES.glob("*.pcap") if p.name in MANIFEST}
    for name, entry in MANIFEST.items():
        assert (CAPTURES / name).stat().st_size < 50_000, name
        assert entry["description"] and entry["tool"]


SCALARS = ("app_protocol", "encrypted", "protection", "visibility", "socks_version", "socks_command",
           "socks_target_host", "socks_target_port", "socks_reply", "socks_auth_method", "socks_user", "tls_version",
           "tls_server_name", "http_method", "http_status")


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_manifest_facts(name: str):
    entry = MANIFEST[name]
    ours = flows(name)
    per_flow = entry.get("flows", [{}])
    assert len(ours) == len(per_flow), name
    assert set(ours["server_ip"]) == {entry["server"]} and set(ours["server_port"]) == {entry["server_port"]}
    for i, expected in enumerate(per_flow):
        for column in SCALARS:
            want = expected.get(column, entry.get(column, "absent"))
            if want != "absent":
                assert value(ours.loc[i, column]) == want, (name, i, column)
    if "cert_subject" in entry:
        assert list(analysis(name).certs["subject"]) == [entry["cert_subject"]]
    got = [(r.protocol, r.mechanism, r.username, int(r.secret_length), bool(r.accepted))
           for r in analysis(name).credentials.itertuples()]
    assert got == [(c["protocol"], c["mechanism"], c["username"], c["secret_length"], c["accepted"])
                   for c in entry["credentials"]]


@pytest.mark.tshark
@pytest.mark.parametrize("name", ["socks4_ssh_tls.pcap", "socks5_ssh_tls.pcap", "socks5_auth_tls.pcap"])
def test_socks_facts_equal_tsharks(name: str):
    """tshark's SOCKS dissector (port 1080; 1081 decoded as SOCKS): per TCP stream the client's
    request (version, host name or address, port) and the server's reply code."""
    rows = tshark(name, "socks", "tcp.stream", "tcp.dstport", "socks.version", "socks.command", "socks.v4a_dns_name",
                  "socks.remote_name", "socks.dst", "socks.dstport", "socks.results", "socks.username",
                  decode="tcp.port==1081,socks")
    ours = flows(name)
    streams = sorted({int(r[0]) for r in rows})
    assert len(streams) == len(ours)
    for i, stream in enumerate(streams):
        mine = [r for r in rows if int(r[0]) == stream]
        to_proxy = [r for r in mine if int(r[1]) == ours.loc[i, "server_port"]]
        from_proxy = [r for r in mine if int(r[1]) != ours.loc[i, "server_port"]]
        request = next((r for r in to_proxy if r[3]), None)  # the first message with a command
        version = ours.loc[i, "socks_version"]
        assert {r[2] for r in mine if r[2]} <= {version[0], "0"}  # SOCKS 4 replies carry VN 0
        user = next((r[9] for r in to_proxy if r[9]), None)
        assert value(ours.loc[i, "socks_user"]) == user
        if request is None:  # refused before any request (the wrong password)
            assert value(ours.loc[i, "socks_target_host"]) is None
            continue
        host = request[4] or request[5] or request[6]
        port = next(int(r[7]) for r in to_proxy if r[3] and r[7])  # SOCKS 5: on the row after the name
        assert (ours.loc[i, "socks_target_host"], int(ours.loc[i, "socks_target_port"])) == (host, port), i
        code = next((int(r[8]) for r in from_proxy if r[8]), None)
        assert code == (90 if version.startswith("4") else 0)
        assert ours.loc[i, "socks_reply"] == ("granted" if code == 90 else "succeeded")


def _tls_oracle(name: str) -> list[tuple[str, int, str | None]]:
    """(version, cipher code, SNI) of each stream's ServerHello / ClientHello, from tshark."""
    server = tshark(name, "tls.handshake.type==2", "tcp.stream", "tls.handshake.version", "tls.handshake.ciphersuite",
                    decode="tcp.port==1081,socks")
    client = {r[0]: r[1] if len(r) > 1 else "" for r in tshark(
        name, "tls.handshake.type==1", "tcp.stream", "tls.handshake.extensions_server_name",
        decode="tcp.port==1081,socks")}
    return [(VERSIONS[r[1].split(",")[0]], int(r[2].split(",")[0], 16), client.get(r[0]) or None) for r in server]


@pytest.mark.tshark
@pytest.mark.parametrize("name", ["socks4_ssh_tls.pcap", "socks5_ssh_tls.pcap", "socks5_auth_tls.pcap",
                                  "http_connect_tls.pcap"])
def test_tunnelled_tls_equals_tsharks(name: str):
    tls = analysis(name).tls.sort_values("ts").reset_index(drop=True)
    ours = [(r.version, int(r.cipher_code), value(r.server_name)) for r in tls.itertuples()]
    assert ours == _tls_oracle(name)
    assert tls["established"].all() and tls["cert_visible"].all()


@pytest.mark.parametrize("cut", sorted(CUTS))
def test_server_only_cut_keeps_every_server_fact(cut: str):
    """The server's side alone (no request, no ClientHello): a full tls row with the server's facts
    equal to the two-sided run's; client facts empty; the flow still encrypted by TLS."""
    whole, part = analysis(CUTS[cut]), analysis(cut)
    assert list(part.flows["visibility"]) == ["server_only"]
    assert part.flows.loc[0, "encrypted"] == True and part.flows.loc[0, "protection"] == "tls"  # noqa: E712
    assert len(part.tls) == 1
    a, b = whole.tls.iloc[0], part.tls.iloc[0]
    for column in ("version", "cipher", "cipher_code", "server_extensions", "ja4s", "ja3s", "cert_chain", "cert_sha256",
                   "cert_visible", "established", "selected_group"):
        assert value(b[column]) == value(a[column]), column
    for column in ("ja4", "ja3", "client_ciphers", "server_name"):
        assert value(b[column]) is None, column
    assert b["client_hello_count"] == 0 and str(b["history"]) == "".join(c for c in str(a["history"]) if c.islower())
    for column in ("tls_version", "tls_cipher", "ja4s", "cert_sha256", "cert_not_after", "cert_key_bits"):
        assert value(part.flows.loc[0, column]) == value(whole.flows.loc[0, column]), column


def _forbidden(secret: str) -> list[bytes]:
    raw = secret.encode()
    return [raw, base64.b64encode(raw).rstrip(b"="), raw.hex().encode()]


def test_no_output_contains_a_socks_password(tmp_path: Path):
    name = "socks5_auth_tls.pcap"
    secrets = MANIFEST[name]["secrets"]
    assert secrets
    for command in ("flows", "credentials", "anomalies", "tls"):
        for fmt in ("table", "csv", "jsonl", "parquet"):
            out = tmp_path / f"{command}.{fmt}"
            args = [command, str(CAPTURES / name), "--format", fmt, "--all-columns",
                    *(["--out", str(out)] if fmt == "parquet" else [])]
            result = CliRunner().invoke(main, args)
            assert result.exit_code == 0, result.output
            for blob in (result.stdout_bytes, result.stderr_bytes, out.read_bytes() if fmt == "parquet" else b""):
                for secret in secrets:
                    for needle in _forbidden(secret):
                        assert needle not in blob, (command, fmt, secret)
