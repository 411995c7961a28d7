"""The analyzer, run as users run it (the `intransit` CLI), against the facts of every bundled
capture in captures/manifest.json (recorded from real OpenSSL, GnuTLS, curl, aioquic, OpenSSH and
the kernel's VXLAN by captures/make_captures.sh; the manifest itself is checked against tshark in
test_captures_manifest.py)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import pandas as pd
import pytest

from analyzer import dissect as registry

CAPTURES = Path(__file__).resolve().parents[2] / "captures"
MANIFEST = json.loads((CAPTURES / "manifest.json").read_text())["captures"]
TLS_CAPTURES = sorted(k for k, v in MANIFEST.items() if "tls_version" in v and "same_as" not in v)


@cache
def run_cli(command: str, name: str) -> pd.DataFrame:
    proc = subprocess.run([sys.executable, "-m", "analyzer", command, str(CAPTURES / name), "--format", "jsonl"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return pd.read_json(io.StringIO(proc.stdout), lines=True) if proc.stdout.strip() else pd.DataFrame()


def _session_flow(name: str) -> pd.Series:
    facts = MANIFEST[name]
    flows = run_cli("flows", name)
    port = facts.get("server_port")
    cand = flows[flows["tls_version"].notna()]
    if port is not None:
        cand = cand[cand["server_port"] == port]
    assert len(cand), f"no TLS flow on port {port} in {name}"
    return cand.iloc[0]


@pytest.mark.slow
@pytest.mark.parametrize("name", TLS_CAPTURES)
def test_negotiated_facts_equal_the_manifest(name: str) -> None:
    facts = MANIFEST[name]
    flow = _session_flow(name)
    assert flow["tls_version"] == facts["tls_version"]
    if "tls_cipher" in facts:
        assert flow["tls_cipher"] == facts["tls_cipher"]
    if "server_name" in facts:
        assert flow["tls_server_name"] == facts["server_name"]
    if "vni" in facts:
        assert flow["vni"] == facts["vni"]
    if facts.get("handshake_complete") is not None:
        assert bool(flow["tls_established"]) == facts["handshake_complete"]
    cert = facts.get("cert")
    if cert and facts["tls_version"] != "TLS 1.3" and "quic" not in name:
        # certificates are visible up to TLS 1.2
        assert flow["cert_sha256"] == cert["sha256"]
        assert flow["cert_key_bits"] == cert["key_bits"]
        assert bool(flow["cert_self_signed"]) == bool(cert.get("self_signed"))
    elif facts["tls_version"] == "TLS 1.3":
        assert pd.isna(flow["cert_sha256"]), "a TLS 1.3 certificate is encrypted: it cannot be known"


@pytest.mark.slow
def test_failed_handshake_is_not_established_and_says_why() -> None:
    tls = run_cli("tls", "tls_version_alert.pcap")
    assert len(tls) == 1
    row = tls.iloc[0]
    assert not row["established"]
    assert row["alert_description"] == "protocol_version"
    assert isinstance(row["failure_reason"], str) and row["failure_reason"]


@pytest.mark.slow
def test_certificates_of_the_bundled_captures() -> None:
    certs = run_cli("certs", "cert_expired_tls12.pcap")
    expected = MANIFEST["cert_expired_tls12.pcap"]["cert"]
    leaf = certs[certs["sha256"] == expected["sha256"]]
    assert len(leaf) == 1
    assert leaf.iloc[0]["subject_cn"] == expected["subject_cn"]
    assert str(leaf.iloc[0]["not_after"]).startswith("2021-01-01")


@pytest.mark.slow
def test_gwlb_geneve_options_become_columns() -> None:
    flows = run_cli("flows", "geneve_gwlb.pcap")
    assert (flows["gwlb_endpoint_id"] == "0a1b2c3d4e5f6071").all()
    assert flows["tunnel"].str.contains("geneve").all()
    assert set(flows["outer_src_ip"]) <= {"10.77.1.1", "10.77.1.2"}


@pytest.mark.slow
def test_tls_after_starttls_is_found_and_marked() -> None:
    flows = run_cli("flows", "smtp_starttls.pcap")
    smtp = flows[flows["server_port"] == 25].iloc[0]
    assert smtp["tls_upgraded"] is True or smtp["tls_upgraded"] == 1
    assert smtp["tls_version"] == MANIFEST["smtp_starttls.pcap"]["tls_version"]


@pytest.mark.slow
def test_plaintext_http_is_not_encrypted() -> None:
    flows = run_cli("flows", "http_plain.pcap")
    http = flows[flows["server_port"] == 80]
    assert len(http) == 1 and pd.isna(http.iloc[0]["tls_version"]) and http.iloc[0]["encrypted"] is not True


def test_frames_option_builds_only_what_is_asked_and_the_rest_is_unchanged() -> None:
    """`frames=` skips keeping rows nobody reads (what `intransit flows` / `tls` ask for); the frames
    that are built equal those of a full analysis, the others are empty with their schema."""
    import analyzer

    paths = [str(CAPTURES)]
    full = analyzer.analyze(paths, on_problem=lambda p: None)
    assert len(full.flows) and len(full.tls) and len(full.certs) and len(full.cert_links)
    only_flows = analyzer.analyze(paths, on_problem=lambda p: None, frames=("flows",))
    pd.testing.assert_frame_equal(only_flows.flows, full.flows)
    pd.testing.assert_frame_equal(only_flows.anomalies, full.anomalies)  # always built
    for name in ("tls", "certs", "cert_links"):
        got = getattr(only_flows, name)
        assert len(got) == 0 and list(got.columns) == list(registry.ALL[name]), name
    only_tls = analyzer.analyze(paths, on_problem=lambda p: None, frames=("tls", "certs"))
    pd.testing.assert_frame_equal(only_tls.tls, full.tls)
    pd.testing.assert_frame_equal(only_tls.certs, full.certs)
    assert len(only_tls.flows) == 0 and list(only_tls.flows.columns) == list(registry.FLOWS)


@pytest.mark.parametrize(("frames", "words"), [(("flows", "tsl"), "unknown frame(s): tsl"),
                                                ("flows", "not a string")])
def test_frames_option_refuses_unknown_names(frames: object, words: str) -> None:
    import analyzer
    from analyzer.errors import UsageError

    with pytest.raises(UsageError, match=words.replace("(", r"\(").replace(")", r"\)")):
        analyzer.analyze([str(CAPTURES / "http_plain.pcap")], frames=frames)
