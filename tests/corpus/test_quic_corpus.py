"""QUIC against the tshark oracle and the upstream expectations on the shared real-capture corpus.

Each QUIC conversation the oracle lists is dissected and compared field by field: SNI, offered
ALPN, negotiated TLS version, selected cipher, QUIC version and the oracle's JA4 / JA4S. Known
disagreements are listed in KNOWN with the reason (see analyzer/dissect/QUIC_DTLS_NOTES.md); any
other difference fails.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest
from support.udp_helpers import CORPUS, ORACLE, PCAPS, oracle_files_with, udp_flows

from analyzer.dissect.quic import QuicDissector, version_name

pytestmark = [
    pytest.mark.corpus,
    pytest.mark.skipif(not CORPUS.is_dir(), reason=f"shared corpus not found at {CORPUS}"),
]
logging.getLogger("scapy").setLevel(logging.ERROR)

TLS_VERSIONS = {"TLSv1.3": "TLS 1.3", "TLSv1.2": "TLS 1.2"}

# (capture, conversation, field) -> why we differ from tshark (and why we are right)
KNOWN = {
    # tshark derives the v1 Initial's keys from the DCID of the client's first packet (a
    # 0xbabababa probe answered by Version Negotiation), so it cannot decrypt the real ClientHello.
    # Ours authenticates with the DCID that Initial carries (AEAD tag verified).
    ("ndpi/quic-forcing-vn-with-data.pcapng", "udp:0", "alpn_offered"),
    ("ndpi/quic-forcing-vn-with-data.pcapng", "udp:0", "ja4"),
    # Google QUIC Q025: tshark names the protocol gquic but lists no quic.version.
    ("ndpi/http_ipv6.pcap", "udp:0", "quic_version"),
}


def _oracle_files() -> list[Path]:
    return oracle_files_with("quic")


def _compare(path: Path) -> tuple[dict[str, list[int]], list[str]]:
    with open(path, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["transport"] == "udp" and "quic" in r["app_protocols"]]
    capture = CORPUS / rows[0]["file"]
    name = str(capture.relative_to(PCAPS))
    flows = {
        frozenset([(f.client_ip, f.client_port), (f.server_ip, f.server_port)]): f for f in udp_flows(capture)
    }
    d = QuicDissector()
    score: dict[str, list[int]] = {}
    diffs = []
    for r in rows:
        key = frozenset([(r["client_ip"], int(r["client_port"])), (r["server_ip"], int(r["server_port"]))])
        flow = flows[key]
        assert d.probe(flow), (name, r["conv"])
        facts = d.dissect(flow)
        f = facts.flow
        t = facts.rows["tls"][0]
        established = f.get("tls_established")
        checks = {
            "sni": (r["sni"] or None, f.get("tls_server_name")),
            "alpn_offered": (r["alpn_offered"].replace("|", ",") or None, t.get("alpn_offered")),
            "version": (
                TLS_VERSIONS.get(r["negotiated_version"]),
                f.get("tls_version") if established else None,
            ),
            "cipher": (
                r["selected_cipher"] or None,
                f"0x{t['cipher_code']:04x}" if t.get("cipher_code") is not None else None,
            ),
            "ja4": (r["ja4_oracle"].split("|")[0] or None, f.get("ja4")),
            "ja4s": (r["ja4s_oracle"].split("|")[0] or None, f.get("ja4s")),
            "quic_version": (
                {version_name(int(v, 16)) for v in r["quic_versions"].split("|") if v},
                t.get("quic_version"),
            ),
        }
        for field, (want, got) in checks.items():
            ok = got in want if isinstance(want, set) else want == got
            score.setdefault(field, [0, 0])
            score[field][0] += ok
            score[field][1] += 1
            if not ok and (name, r["conv"], field) not in KNOWN:
                diffs.append(f"{name} {r['conv']} {field}: oracle={want!r} ours={got!r}")
    return score, diffs


@pytest.mark.parametrize("oracle", _oracle_files(), ids=lambda p: str(p.relative_to(ORACLE)))
def test_quic_matches_oracle(oracle: Path) -> None:
    _score, diffs = _compare(oracle)
    assert diffs == []


def test_quic_corpus_is_covered() -> None:
    files = _oracle_files()
    assert len(files) >= 15  # the sweep above really ran over the QUIC captures


def test_quic_v2_capture_details() -> None:
    """ndpi quic-v2.pcapng: client's first byte has the fixed bit cleared (grease_quic_bit)."""
    flows = udp_flows(PCAPS / "ndpi/quic-v2.pcapng")
    facts = QuicDissector().dissect(flows[0])
    row = facts.rows["tls"][0]
    assert row["quic_version"] == "2"
    assert "grease_quic_bit" in row["quic_transport_params"]
    assert row["established"] is True and row["history"] == "Cs"


def test_retry_capture() -> None:
    flows = udp_flows(PCAPS / "zeek/quic/interop/quic-go_quic-go/retry.pcap")
    facts = QuicDissector().dissect(flows[0])
    retry = [a for a in facts.rows["anomalies"] if a["kind"] == "quic_retry"]
    assert len(retry) == 1 and "(integrity tag valid)" in str(retry[0]["detail"])
    assert facts.flow["tls_established"] is True
    assert facts.flow["tls_server_name"] == "server4:443"


def test_quic29_hello_retry_request() -> None:
    flows = udp_flows(PCAPS / "ndpi/quic-29.pcap")
    row = QuicDissector().dissect(flows[0]).rows["tls"][0]
    assert row["hello_retry_request"] is True and row["history"] == "CjCs"
    assert row["quic_version"] == "draft-29"


def test_fuzzed_capture_does_not_crash() -> None:
    d = QuicDissector()
    for flow in udp_flows(PCAPS / "ndpi/quic-fuzz-overflow.pcapng"):
        if d.probe(flow):
            d.dissect(flow)


def test_upstream_rust_ja4_for_quic() -> None:
    """FoxIO's Rust ja4 snapshot has the QUIC JA4/JA4S of the Cloudflare capture."""
    snap = (CORPUS / "upstream/ja4/chrome-cloudflare-quic-with-secrets.pcapng/rust_ja4.snap").read_text()
    flows = [
        f for f in udp_flows(PCAPS / "ja4/chrome-cloudflare-quic-with-secrets.pcapng") if f.server_port == 443
    ]
    facts = QuicDissector().dissect(flows[0])
    assert f"ja4: {facts.flow['ja4']}" in snap
    assert f"ja4s: {facts.flow['ja4s']}" in snap


def test_draft29_retry_integrity_verified() -> None:
    facts = QuicDissector().dissect(udp_flows(PCAPS / "ndpi/quic-29.pcap")[0])
    retry = [a for a in facts.rows["anomalies"] if a["kind"] == "quic_retry"]
    assert len(retry) == 1 and "(integrity tag valid)" in str(retry[0]["detail"])


def test_through_the_pipeline() -> None:
    """The registered dissector inside `analyzer.analyze()` (the flow table keeps 32 datagrams per UDP flow)."""
    import analyzer

    res = analyzer.analyze([str(PCAPS / "ndpi/quic-v2.pcapng"), str(PCAPS / "ndpi/quic-29.pcap")])
    quic = res.flows[res.flows["app_protocol"] == "quic"]
    assert len(quic) == 2
    assert set(quic["tls_version"]) == {"TLS 1.3"} and quic["tls_established"].all()
    assert set(res.tls["quic_version"]) == {"2", "draft-29"}
    assert set(res.tls["protocol"]) == {"quic"}
