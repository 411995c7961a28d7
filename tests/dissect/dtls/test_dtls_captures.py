"""DTLS through the whole pipeline (flow table, then dissector) on real captures.

The dissector's own tests (test_dtls.py, test_dtls_corpus.py) give it every datagram of a flow; in
`analyze()` it sees only what the flow table kept of each UDP flow. These tests check that what is
kept is enough: the pipeline's DTLS facts equal the dissector's over all the datagrams, and the
bundled capture's facts equal its manifest (recorded from openssl by captures/make_captures.sh).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest
from support.udp_helpers import CORPUS, PCAPS, udp_flows

import analyzer
from analyzer.dissect.dtls import DTLSDissector

logging.getLogger("scapy").setLevel(logging.ERROR)

CAPTURES = Path(__file__).resolve().parents[3] / "captures"
MANIFEST = json.loads((CAPTURES / "manifest.json").read_text())["captures"]
BUNDLED = sorted(k for k, v in MANIFEST.items() if "dtls_version" in v)
CORPUS_DTLS = sorted(p for p in PCAPS.rglob("*dtls*") if p.is_file()) if CORPUS.is_dir() else []


def _full_dissection(path: Path) -> dict[tuple[str, int, str, int], dict[str, object]]:
    """The dissector's tls row per flow, given every datagram of the flow (scapy reads them)."""
    d = DTLSDissector()
    out = {}
    for f in udp_flows(path):
        if d.probe(f):
            rows = d.dissect(f).rows.get("tls")
            if rows:
                out[(f.client_ip, f.client_port, f.server_ip, f.server_port)] = rows[0]
    return out


def _same(ours: object, full: object) -> bool:
    if full is None:
        return bool(pd.isna(ours)) if not isinstance(ours, (list, tuple)) else False
    return str(ours) == str(full)


@pytest.mark.parametrize(
    "path",
    [CAPTURES / n for n in BUNDLED]
    + [pytest.param(p, marks=pytest.mark.corpus, id=str(p.relative_to(PCAPS))) for p in CORPUS_DTLS],
    ids=lambda p: p.name,
)
def test_pipeline_keeps_enough_datagrams_for_the_dtls_facts(path: Path) -> None:
    full = _full_dissection(path)
    result = analyzer.analyze([str(path)])
    udp = set(result.flows.loc[result.flows["transport"] == "udp", "uid"])
    tls = result.tls
    tls = tls[(tls["protocol"] == "dtls") & tls["uid"].isin(udp)]  # a TURN relay's DTLS (TCP): tests/dissect/stun
    assert len(tls) == len(full) > 0
    diffs = []
    for _, row in tls.iterrows():
        ref = full[(row["client_ip"], row["client_port"], row["server_ip"], row["server_port"])]
        diffs += [
            f"{row['client_port']} {col}: pipeline={row[col]!r} all datagrams={ref[col]!r}"
            for col in ref
            if col not in ("uid", "ts") and col in row.index and not _same(row[col], ref[col])
        ]
    assert diffs == []


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_dtls_capture_equals_its_manifest(name: str) -> None:
    facts = MANIFEST[name]
    res = analyzer.analyze([str(CAPTURES / name)])
    flows = res.flows[res.flows["app_protocol"] == "dtls"]
    assert len(flows) == 1
    flow, tls = flows.iloc[0], res.tls.iloc[0]
    assert flow["server_port"] == facts["server_port"]
    assert flow["tls_version"] == facts["dtls_version"]
    assert flow["tls_cipher"] == facts["tls_cipher"]
    assert flow["tls_server_name"] == facts["server_name"]
    assert flow["cert_sha256"] == facts["cert"]["sha256"]
    assert bool(flow["tls_established"]) == facts["handshake_complete"]
    if facts["handshake_complete"]:
        # both ChangeCipherSpecs (client "I", server "i") are in the history
        assert "I" in tls["history"] and "i" in tls["history"]
