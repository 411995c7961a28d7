"""Fixtures of the policy tests: the bundled captures analysed once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def captured():
    """(flows, tls, certs, credentials, ftp_data) of every bundled capture (one analysis for all policy tests)."""
    import analyzer

    r = analyzer.analyze([str(ROOT / "captures")], on_problem=lambda p: None)
    return r.flows, r.tls, r.certs, r.credentials, r.ftp_data
