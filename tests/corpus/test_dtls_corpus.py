"""DTLS against the tshark oracle and Zeek's baselines on the shared real-capture corpus."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest
from support.udp_helpers import CORPUS, ORACLE, PCAPS, oracle_files_with, udp_flows

from analyzer.dissect.dtls import DTLSDissector

pytestmark = [
    pytest.mark.corpus,
    pytest.mark.skipif(not CORPUS.is_dir(), reason=f"shared corpus not found at {CORPUS}"),
]
logging.getLogger("scapy").setLevel(logging.ERROR)

VERSIONS = {"DTLSv1.0": "DTLS 1.0", "DTLSv1.2": "DTLS 1.2", "DTLSv1.3": "DTLS 1.3",
            "DTLSv1.0(OpenSSL-pre)": "DTLS 1.0"}  # fmt: skip


# (capture, conversation, field): where tshark is wrong (see analyzer/dissect/QUIC_DTLS_NOTES.md)
KNOWN = {
    # The client's Certificate flight is retransmitted (frames 6 and 10); tshark's per-conversation
    # count adds both copies. The chain holds one certificate (certificates_length 284 = 3 + 281).
    ("ndpi/stun_dtls_rtp.pcapng", "udp:0", "client_certs"),
}


def _oracle_files() -> list[Path]:
    return oracle_files_with("dtls")


def _dissect(capture: Path) -> dict[frozenset[tuple[str, int]], object]:
    d = DTLSDissector()
    out = {}
    for f in udp_flows(capture):
        if d.probe(f):
            out[frozenset([(f.client_ip, f.client_port), (f.server_ip, f.server_port)])] = d.dissect(f)
    return out


@pytest.mark.parametrize("oracle", _oracle_files(), ids=lambda p: str(p.relative_to(ORACLE)))
def test_dtls_matches_oracle(oracle: Path) -> None:
    with open(oracle, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["transport"] == "udp" and "dtls" in r["app_protocols"]]
    facts_by_flow = _dissect(CORPUS / rows[0]["file"])
    diffs = []
    for r in rows:
        key = frozenset([(r["client_ip"], int(r["client_port"])), (r["server_ip"], int(r["server_port"]))])
        facts = facts_by_flow[key]
        f = facts.flow  # type: ignore[attr-defined]
        t = facts.rows["tls"][0]  # type: ignore[attr-defined]
        cipher = f"0x{t['cipher_code']:04x}" if t.get("cipher_code") is not None else None
        chain = str(t.get("cert_chain") or "")
        client_chain = str(t.get("client_cert_chain") or "")
        checks = {
            "version": (VERSIONS.get(r["negotiated_version"]), t.get("version")),
            "cipher": (r["selected_cipher"] or None, cipher),
            "sni": (r["sni"] or None, f.get("tls_server_name")),
            "ja4": (r["ja4_oracle"].split("|")[0] or None, f.get("ja4")),
            "ja4s": (r["ja4s_oracle"].split("|")[0] or None, f.get("ja4s")),
            "hrr": (r["hrr"] == "1", t.get("hello_retry_request")),
            "server_certs": (int(r["server_cert_count"] or 0), len(chain.split(",")) if chain else 0),
            "client_certs": (
                int(r["client_cert_count"] or 0),
                len(client_chain.split(",")) if client_chain else 0,
            ),
        }
        name = str(oracle.relative_to(ORACLE))[: -len(".csv")]
        diffs += [
            f"{r['conv']} {k}: oracle={w!r} ours={g!r}"
            for k, (w, g) in checks.items()
            if w != g and (name, r["conv"], k) not in KNOWN
        ]
    assert diffs == []


def _zeek_ssl_rows(path: Path) -> list[dict[str, str]]:
    lines = path.read_text().splitlines()
    fields = next(ln.split("\t")[1:] for ln in lines if ln.startswith("#fields"))
    return [dict(zip(fields, ln.split("\t"), strict=False)) for ln in lines if ln and not ln.startswith("#")]


@pytest.mark.parametrize(
    ("capture", "log"),
    [
        ("zeek/tls/dtls1_2.pcap", "zeek/tls/dtls1_2.pcap/scripts.base.protocols.ssl.dtls/ssl1_2.log"),
        (
            "zeek/tls/dtls13-cid.pcap",
            "zeek/tls/dtls13-cid.pcap/scripts.base.protocols.ssl.dtls-13/ssl-all.log",
        ),
    ],
)
def test_dtls_matches_zeek_ssl_log(capture: str, log: str) -> None:
    """Zeek's history letters, established flag and certificate fingerprints (where logged)."""
    facts_by_flow = _dissect(PCAPS / capture)
    if "dtls13" in capture:  # that baseline covers both DTLS 1.3 traces
        facts_by_flow |= _dissect(PCAPS / "zeek/tls/dtls13-wolfssl.pcap")
    zrows = _zeek_ssl_rows(CORPUS / "upstream" / log)
    assert zrows
    for z in zrows:
        key = frozenset([(z["id.orig_h"], int(z["id.orig_p"])), (z["id.resp_h"], int(z["id.resp_p"]))])
        t = facts_by_flow[key].rows["tls"][0]  # type: ignore[attr-defined]
        assert t["history"] == z["ssl_history"]
        assert t["established"] is (z["established"] == "T")
        if z.get("cert_chain_fps", "-") not in ("-", "(empty)"):
            assert t["cert_chain"] == z["cert_chain_fps"]


def test_stun_dtls_rtp_multiplexing() -> None:
    """WebRTC: STUN, DTLS and SRTP on one 5-tuple; only the DTLS datagrams are read (RFC 7983)."""
    flows = [f for f in udp_flows(PCAPS / "ndpi/stun_dtls_rtp.pcapng") if f.server_port == 19305]
    d = DTLSDissector()
    assert d.probe(flows[0])
    facts = d.dissect(flows[0])
    t = facts.rows["tls"][0]
    # the client's flight X G Y and the server's NewSessionTicket were retransmitted
    assert t["established"] is True and t["history"] == "CsxkrnXGYItiXGYt"
    assert facts.flow["cert_self_signed"] is True
    assert [link["sent_by"] for link in facts.rows["cert_links"]] == ["server", "client"]
    assert not [a for a in facts.rows.get("anomalies", []) if a["kind"] != "dtls_cleartext_data"]


def test_dtls_certificate_only_server_flight() -> None:
    flows = udp_flows(PCAPS / "ndpi/dtls_certificate.pcapng")
    facts = DTLSDissector().dissect(flows[0])
    t = facts.rows["tls"][0]
    assert t["cert_visible"] is True and t["established"] is False and t.get("ja4") is None
    cert = facts.rows["certs"][0]
    assert cert["key_bits"] == 2048


def test_through_the_pipeline() -> None:
    """The registered dissector inside `analyzer.analyze()`, certificates included."""
    import analyzer

    res = analyzer.analyze([str(PCAPS / "zeek/tls/dtls1_2.pcap")])
    dtls = res.flows[res.flows["app_protocol"] == "dtls"]
    assert len(dtls) == 1
    row = dtls.iloc[0]
    assert row["tls_version"] == "DTLS 1.2" and bool(row["tls_established"])
    assert row["cert_sha256"] == "6f5446a5b23f4e73925de5e6629c09b1c61ed66537d6d8a7818750c9cd0a67d7"
    assert list(res.cert_links["sent_by"]) == ["server"]
    assert row["cert_sha256"] in set(res.certs["sha256"])
