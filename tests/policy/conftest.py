"""Fixtures of the policy tests: the bundled captures analysed once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def captured():
    """(flows, tls, certs, credentials, ftp_data) of the bundled captures of captures/manifest.json (one
    analysis for all policy tests; the captures other recording scripts add, listed in
    manifest.<group>.json, are judged by their own tests, so these expectations do not move when a
    group adds one)."""
    import json

    import analyzer

    names = sorted(json.loads((ROOT / "captures" / "manifest.json").read_text())["captures"])
    r = analyzer.analyze([str(ROOT / "captures" / n) for n in names], on_problem=lambda p: None)
    return r.flows, r.tls, r.certs, r.credentials, r.ftp_data
