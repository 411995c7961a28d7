"""The TLS dissector against the shared capture corpus (../shared/corpus): FoxIO's own JA4 outputs,
the tshark oracle and Zeek's ssl.log baselines. Every difference is listed below with its reason
(also in analyzer/dissect/tls/NOTES.md); the tests fail on any other difference, and also when a
listed one disappears, so the lists stay honest."""

from __future__ import annotations

import csv
import json
import os
import warnings
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
from support.tls_helpers import corpus_dir, flows_from_pcap

from analyzer.dissect.base import FlowPayload
from analyzer.dissect.tls import TLSDissector
from analyzer.dissect.tls.constants import alert_description_name

pytestmark = [pytest.mark.corpus, pytest.mark.slow]

CORPUS = corpus_dir()


def _corpus() -> Path:
    if CORPUS is None:
        pytest.skip("../shared/corpus is absent: the corpus tests need the shared capture corpus")
    return CORPUS


Row = dict[str, object]


@cache
def dissected(rel: str) -> tuple[tuple[FlowPayload, Row | None], ...]:
    """(flow, tls row) for every TCP connection of a corpus capture."""
    dissector = TLSDissector(ja4x=True, strict=True)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scapy's and cryptography's chatter about odd captures
        flows = flows_from_pcap(_corpus() / "pcaps" / rel)
        for flow in flows:
            rows = dissector.dissect(flow).rows.get("tls")
            out.append((flow, rows[0] if rows else None))
    return tuple(out)


def find(rel: str, a: tuple[str, int], b: tuple[str, int]) -> Row | None:
    """The tls row of the connection between two endpoints; by ports when the addresses differ
    (FoxIO's ja4.py reports the outer addresses of tunnelled packets)."""
    by_ports = None
    for flow, row in dissected(rel):
        ends = {(flow.client_ip, flow.client_port), (flow.server_ip, flow.server_port)}
        if ends == {a, b}:
            return row
        if by_ports is None and {flow.client_port, flow.server_port} == {a[1], b[1]}:
            by_ports = row
    return by_ports


def _foxio_entries(path: Path) -> Iterator[dict[str, str]]:
    try:
        entries = json.loads(path.read_text())
    except (ValueError, OSError):
        return
    for e in entries:
        if any(k.startswith(("JA4.", "JA4S", "JA4X.")) for k in e):
            yield e


def _ja4x_list(e: dict[str, str]) -> list[str]:
    keys = [k for k in e if k.startswith("JA4X.") and k.count(".") == 1]
    return [e[k] for k in sorted(keys, key=lambda k: int(k.split(".")[1]))]


def compare_foxio(files: list[tuple[str, Path]]) -> tuple[dict[str, int], set[tuple[str, str, str]]]:
    """Compare JA4 / JA4S / JA4X with FoxIO ja4.py outputs: (counts, mismatches)."""
    counts = {"ja4": 0, "ja4_ok": 0, "ja4s": 0, "ja4s_ok": 0, "ja4x": 0, "ja4x_ok": 0}
    bad: set[tuple[str, str, str]] = set()
    for rel, path in files:
        if not (_corpus() / "pcaps" / rel).is_file():
            continue
        for e in _foxio_entries(path):
            row = find(rel, (e["src"], int(e["srcport"])), (e["dst"], int(e["dstport"]))) or {}
            stream = str(e["stream"])
            for key, col in (("JA4.1", "ja4"), ("JA4S", "ja4s")):
                if key in e:
                    counts[col] += 1
                    if row.get(col) == e[key]:
                        counts[col + "_ok"] += 1
                    else:
                        bad.add((rel, stream, col))
            want = _ja4x_list(e)
            if want:
                counts["ja4x"] += 1
                if str(row.get("ja4x") or "").split(",") == want:
                    counts["ja4x_ok"] += 1
                else:
                    bad.add((rel, stream, "ja4x"))
    return counts, bad


# FoxIO ja4.py disagreements, each explained in NOTES.md.
KNOWN_FOXIO = {
    # JA4X of TLS 1.3 certificates FoxIO read after decrypting with the capture's key log.
    ("ja4/chrome-cloudflare-quic-with-secrets.pcapng", "0", "ja4x"),
    # JA4 is not defined for SSLv2 hellos; ja4.py prints a degenerate "ts2i000000_..." value.
    ("flowtest/ssl-v2.pcap", "0", "ja4"),
    # ja4.py takes signature_algorithms_cert (50) values instead of signature_algorithms (13).
    ("ndpi/tls_esni_sni_both.pcap", "0", "ja4"),
    ("ndpi/tls_esni_sni_both.pcap", "1", "ja4"),
    # An SNI extension without a host name: "d" by the spec / Rust ja4 / tshark oracle, "i" in ja4.py.
    ("ndpi/ossfuzz_seed_fake_traces_1.pcapng", "4", "ja4"),
    # ja4.py's JA4X pairs tshark's flattened OID lists wrongly: a leaf without extensions (v1
    # certificate) takes the next certificate's extensions, multi-attribute names shift the
    # issuer/subject split, and a later Certificate message (the client's) replaces the server's.
    ("flowtest/tls10.pcap", "0", "ja4x"),
    ("flowtest/tls11.pcap", "0", "ja4x"),
    ("flowtest/tls12.pcap", "0", "ja4x"),
    ("ndpi/6in4tunnel.pcap", "5", "ja4x"),
    ("ndpi/pop3_stls.pcap", "0", "ja4x"),
    ("zeek/socks-with-ssl.pcap", "0", "ja4x"),
    ("zeek/globus-url-copy.pcap", "1", "ja4x"),
}


def test_ja4_equals_foxio_upstream_expected_outputs() -> None:
    root = _corpus()
    files = [(f"ja4/{p.parent.name}", p) for p in sorted((root / "upstream" / "ja4").glob("*/python_ja4.json"))]
    counts, bad = compare_foxio(files)
    assert counts["ja4"] >= 40 and counts["ja4s"] >= 10
    assert bad == {k for k in KNOWN_FOXIO if k[0].startswith("ja4/")}, sorted(bad)
    # Every TCP TLS capture of FoxIO's own test set: JA4 and JA4S agree 100 %.
    assert counts["ja4_ok"] == counts["ja4"] and counts["ja4s_ok"] == counts["ja4s"]


def test_ja4_equals_foxio_rerun_on_the_whole_corpus() -> None:
    root = _corpus()
    files = []
    for p in sorted((root / "oracle").glob("*/*.ja4.json")):
        rel = str(p.relative_to(root / "oracle"))[: -len(".ja4.json")]
        files.append((rel, p))
    counts, bad = compare_foxio(files)
    assert counts["ja4"] >= 190 and counts["ja4s"] >= 100 and counts["ja4x"] >= 50
    assert bad == KNOWN_FOXIO, sorted(bad ^ KNOWN_FOXIO)


# --- the tshark oracle --------------------------------------------------------------------------

_TSHARK_VERSIONS = {
    "TLSv1": "TLS 1.0",
    "TLSv1.0": "TLS 1.0",
    "TLSv1.1": "TLS 1.1",
    "TLSv1.2": "TLS 1.2",
    "TLSv1.3": "TLS 1.3",
    "SSLv3": "SSL 3.0",
    "SSLv2": "SSL 2.0",
    "TLSv1.3-draft28": "TLS 1.3 (draft 28)",
    "TLSv1.3-fb-draft26": "TLS 1.3 (Facebook draft 26)",
}

KNOWN_TSHARK = {
    # tshark does not count a certificate it cannot decode; we report the bytes that were sent.
    ("flowtest/tls_malformed_cert.pcap", "tcp:0", "certs"),
    # The oracle's JA3 script stops at a malformed extensions block (a 3-field string, or none);
    # we keep the fields read before the problem, like Wireshark does for the extensions.
    ("ndpi/tls_invalid_reads.pcap", "tcp:0", "ja3"),
    ("ndpi/tls_invalid_reads.pcap", "tcp:2", "ja3"),
}


def test_tshark_oracle_fields() -> None:
    root = _corpus()
    bad: set[tuple[str, str, str]] = set()
    checked = 0
    for path in sorted((root / "oracle").glob("*/*.csv")):
        if path.name.endswith(".with_secrets.csv") or path.name == "crosscheck.csv":
            continue
        with path.open(newline="") as fh:
            rows = [
                r
                for r in csv.DictReader(fh)
                if r["transport"] == "tcp" and (r["ch_count"] not in ("", "0") or r["sh_count"] not in ("", "0"))
            ]
        if not rows:
            continue
        rel = rows[0]["file"][len("pcaps/") :]
        for r in rows:
            t = find(rel, (r["client_ip"], int(r["client_port"])), (r["server_ip"], int(r["server_port"])))
            key = (rel, r["conv"])
            if t is None:
                bad.add((*key, "no tls row"))
                continue
            checked += 1
            expect: dict[str, tuple[object, object]] = {}
            if r["ch_count"] not in ("", "0"):
                expect["sni"] = (r["sni"] or None, t["server_name"])
                expect["sslv2_ch"] = (r["sslv2_ch"] == "1", bool(t["sslv2_client_hello"]))
                expect["ja4"] = (r["ja4_oracle"].split("|")[0] or None, t["ja4"])
                expect["ciphers"] = (  # a hello offering no suite: "" (as client_extensions)
                    ",".join(x[2:] for x in r["ch_ciphers"].split("|")) if r["ch_ciphers"] else "",
                    t["client_ciphers"],
                )
                if r["sslv2_ch"] != "1":
                    expect["ja3"] = (r["ja3"] or None, t["ja3"])
                    expect["extensions"] = (
                        r["ch_extensions"].replace("|", ","),
                        t["client_extensions"] or "",
                    )
            if r["sh_count"] not in ("", "0"):
                v = r["negotiated_version"]
                expect["version"] = (_TSHARK_VERSIONS.get(v, v) or None, t["version"])
                if r["selected_cipher"]:
                    expect["cipher"] = (int(r["selected_cipher"], 16), t["cipher_code"])
                expect["alpn"] = (r["alpn_selected"] or None, t["alpn"])
                expect["ja3s"] = (r["ja3s"] or None, t["ja3s"])
                expect["hrr"] = (r["hrr"] == "1", t["hello_retry_request"])
                chain = str(t["cert_chain"] or "")
                expect["certs"] = (int(r["server_cert_count"] or 0), len(chain.split(",")) if chain else 0)
                if r["resumed_session_id"] or r["sh_psk_ext"]:
                    expect["resumed"] = (
                        r["resumed_session_id"] == "1" or r["sh_psk_ext"] == "1",
                        t["resumed"],
                    )
            if r["alerts"]:
                expect["alert"] = (
                    alert_description_name(int(r["alerts"].split("|")[0])),
                    t["alert_description"],
                )
            for name, (want, got) in expect.items():
                if want != got:
                    bad.add((*key, name))
    assert checked >= 200
    assert bad == KNOWN_TSHARK, sorted(bad ^ KNOWN_TSHARK)


# --- Zeek baselines -----------------------------------------------------------------------------

_ZEEK_VERSIONS = {
    "TLSv10": "TLS 1.0",
    "TLSv11": "TLS 1.1",
    "TLSv12": "TLS 1.2",
    "TLSv13": "TLS 1.3",
    "SSLv3": "SSL 3.0",
    "SSLv2": "SSL 2.0",
}


def _zeek_logs(root: Path) -> Iterator[tuple[str, dict[str, str]]]:
    for log in sorted((root / "upstream" / "zeek").glob("**/*ssl*.log")):
        parts = log.relative_to(root / "upstream" / "zeek").parts
        pcap = next(
            (
                "/".join(parts[:i])
                for i in range(1, len(parts))
                if (root / "pcaps" / "zeek" / "/".join(parts[:i])).is_file()
            ),
            None,
        )
        if pcap is None:
            continue
        fields: list[str] = []
        for line in log.read_text().splitlines():
            if line.startswith("#fields"):
                fields = line.split("\t")[1:]
            elif fields and not line.startswith("#") and "ssl_history" in fields:
                yield f"zeek/{pcap}", dict(zip(fields, line.split("\t"), strict=False))


def test_zeek_ssl_log_baselines() -> None:
    """History letters, establishment, version, cipher, curve, resumption, alerts and SNI match
    Zeek's ssl.log for every baseline row whose connection is in the capture the test names
    (a baseline may mix several captures; DTLS rows belong to another dissector)."""
    root = _corpus()
    matched = 0
    bad = []
    for rel, r in _zeek_logs(root):
        if "DTLS" in r.get("version", "") or "Cv" in r.get("ssl_history", ""):
            continue
        a, b = (r["id.orig_h"], int(r["id.orig_p"])), (r["id.resp_h"], int(r["id.resp_p"]))
        t = None
        for flow, row in dissected(rel):
            if {(flow.client_ip, flow.client_port), (flow.server_ip, flow.server_port)} == {a, b}:
                t = row
        if t is None:
            continue
        matched += 1
        checks = {
            "history": (r["ssl_history"], t["history"]),
            "established": (r["established"] == "T", t["established"]),
        }
        if r.get("version", "-") in _ZEEK_VERSIONS:
            checks["version"] = (_ZEEK_VERSIONS[r["version"]], t["version"])
        for zk, ours in (
            ("cipher", "cipher"),
            ("curve", "selected_group"),
            ("server_name", "server_name"),
            ("next_protocol", "alpn"),
            ("last_alert", "alert_description"),
        ):
            if r.get(zk, "-") != "-":
                checks[zk] = (r[zk], t[ours])
        if r.get("resumed", "-") != "-":
            checks["resumed"] = (r["resumed"] == "T", t["resumed"])
        if r.get("sni_matches_cert", "-") != "-" and os.environ.get("INTRANSIT_NO_X509") is None:
            checks["sni_matches_cert"] = (r["sni_matches_cert"] == "T", t["sni_matches_cert"])
        bad.extend(f"{rel} {a}: {k} zeek={w!r} ours={g!r}" for k, (w, g) in checks.items() if w != g)
    assert matched >= 30
    assert bad == []
