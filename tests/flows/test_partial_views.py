"""Partial views of the bundled TLS captures: a one-sided mirror (client_only, server_only) and a
session picked up after its TCP start (mid_stream). The facts one side shows equal the two-sided
run's, `encrypted` is never False for an encrypted session, and `visibility` says what was missing."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import analyzer

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = ROOT / "captures"
MANIFEST = json.loads((CAPTURES / "manifest.json").read_text())["captures"]
# two-sided TLS sessions over TCP on their own (no tunnel), handshake complete
TLS = sorted(name for name, e in MANIFEST.items()
             if e.get("transport") == "tcp" and e.get("tls_version") and e.get("handshake_complete")
             and not e.get("tunnel") and name.endswith(".pcap") and name.startswith(("tls", "cert_", "nano")))
CLIENT_FACTS = ("tls_server_name", "ja3", "ja4", "tls_client_max_version")
SERVER_FACTS = ("tls_version", "tls_cipher", "ja3s", "ja4s", "cert_sha256")


def _cut(src: Path, dst: Path, keep) -> Path:  # type: ignore[no-untyped-def]
    from scapy.layers.inet import TCP
    from scapy.utils import PcapReader, PcapWriter

    with PcapReader(str(src)) as reader, PcapWriter(str(dst), sync=True) as writer:
        for i, pkt in enumerate(reader):
            if TCP in pkt and keep(i, pkt[TCP]):
                writer.write(pkt)
    return dst


def _same(a: object, b: object) -> bool:
    return bool(pd.isna(a) and pd.isna(b)) if pd.isna(a) or pd.isna(b) else bool(a == b)


def _tls_flows(path: Path) -> pd.DataFrame:
    flows = analyzer.analyze(str(path)).flows
    return flows[flows["app_protocol"] == "tls"].reset_index(drop=True)


@pytest.mark.parametrize("name", TLS)
def test_one_sided_and_mid_stream_views(name: str, tmp_path: Path) -> None:
    assert len(TLS) >= 10
    whole = _tls_flows(CAPTURES / name)
    port = int(whole["server_port"].iloc[0])
    both = whole.iloc[0]
    assert both["visibility"] == "both" and bool(both["encrypted"])

    client = _tls_flows(_cut(CAPTURES / name, tmp_path / "c.pcap", lambda i, t: t.dport == port)).iloc[0]
    assert client["visibility"] == "client_only"
    assert pd.isna(client["encrypted"]) or bool(client["encrypted"])  # never called cleartext
    for column in CLIENT_FACTS:
        assert _same(client[column], both[column]), column

    server = _tls_flows(_cut(CAPTURES / name, tmp_path / "s.pcap", lambda i, t: t.sport == port)).iloc[0]
    assert server["visibility"] == "server_only"
    assert bool(server["encrypted"])
    for column in ("tls_version", "tls_cipher"):
        assert _same(server[column], both[column]), column

    # picked up after the TCP handshake (its first three packets dropped)
    mid = _tls_flows(_cut(CAPTURES / name, tmp_path / "m.pcap", lambda i, t: i >= 3)).iloc[0]
    assert mid["visibility"] == "mid_stream" and bool(mid["encrypted"])
    for column in (*CLIENT_FACTS, *SERVER_FACTS):
        assert _same(mid[column], both[column]), column


def test_a_client_hello_alone_is_undecided_and_says_why(tmp_path: Path) -> None:
    src = CAPTURES / "tls12_ecdhe_openssl.pcap"
    port = int(_tls_flows(src)["server_port"].iloc[0])
    seen = {"hello": False}

    def up_to_the_hello(i: int, t) -> bool:  # type: ignore[no-untyped-def]
        if t.dport != port or seen["hello"]:
            return False
        seen["hello"] = bytes(t.payload)[:1] == b"\x16"
        return True

    flow = _tls_flows(_cut(src, tmp_path / "hello.pcap", up_to_the_hello)).iloc[0]
    assert pd.isna(flow["encrypted"]) and flow["undecided_reason"] == "one_sided"
    assert flow["tls_server_name"] == "www.example.com" and flow["ja4"]


def test_visibility_of_flows_without_payload(tmp_path: Path) -> None:
    """A SYN nobody answered is client_only; the engine's undecided_reason says no_payload."""
    flows = analyzer.analyze(str(CAPTURES / "tcp_rst_closed_port.pcap")).flows
    assert set(flows["undecided_reason"]) == {"no_payload"}
    assert flows["visibility"].isin(["both", "client_only"]).all()
