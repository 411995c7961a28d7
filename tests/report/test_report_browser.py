"""The HTML report in a real browser: headless Chromium (Debian's package; .ci/run installs it) opens
it through the DevTools protocol (tests/support/chromium.py). The page must render (a screenshot that
is not blank), log no console error, request nothing but its own `data:` images, and show a capture's
script and markup payloads (SNI, certificate name, Host, User-Agent) as inert text: no element they
spell exists and the document title they would set is untouched.

A control page, unescaped and without a policy, proves the harness sees what it must catch (a script
that ran, a request, a console error), so the report's clean result means something.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from matplotlib.image import imread
from support.chromium import Visit, chromium_binary, visit
from support.report_helpers import CN, HOST, SNI, VPC, hostile_capture

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(chromium_binary() is None,
                                 reason="chromium is not installed (.ci/run installs Debian's chromium)")]

ROOT = Path(__file__).resolve().parents[2]
PROBES = (
    "document.title",
    "document.querySelectorAll('script, svg, iframe, object, embed, form, link, base').length",
    "Array.from(document.images).map(i => i.src.slice(0, 26) + ':' + i.naturalWidth)",
    "document.body.innerText",
    "JSON.stringify(Array.from(document.querySelectorAll('[onerror], [onload]')).length)",
)


def not_blank(png: bytes) -> bool:
    image = imread(io.BytesIO(png))
    return image.ndim == 3 and float(image[..., :3].std()) > 0.05


def foreign_requests(v: Visit, page: Path) -> list[str]:
    return [u[:80] for u in v.requests if u != page.resolve().as_uri() and not u.startswith("data:")]


def test_the_harness_catches_scripts_requests_and_errors(tmp_path: Path) -> None:
    page = tmp_path / "unsafe.html"
    page.write_text("<!DOCTYPE html><title>t</title><body><div style='background:#000;height:1000px'>x</div><img src='http://example.invalid/a.png'>"
                    "<script>console.error('boom'); document.title = 'XSS-RAN'</script></body>")
    v = visit(page, PROBES[:1])
    assert v.values["document.title"] == "XSS-RAN"
    assert foreign_requests(v, page) == ["http://example.invalid/a.png"]
    assert any("boom" in e for e in v.errors())
    assert not not_blank(_white_png()) and not_blank(v.screenshot)  # the blank check tells the two apart


def _white_png() -> bytes:
    from matplotlib.figure import Figure

    buf = io.BytesIO()
    Figure(figsize=(2, 2)).savefig(buf, format="png")
    return buf.getvalue()


def test_the_report_is_inert_offline_and_drawn(tmp_path: Path) -> None:
    capture = hostile_capture(tmp_path / "hostile.pcap")
    page = tmp_path / "report.html"
    run = subprocess.run([sys.executable, "-m", "analyzer", "report", str(capture), "--vpc", VPC, "--out", str(page)],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    v = visit(page, PROBES)
    assert v.errors() == []
    assert foreign_requests(v, page) == []
    assert not_blank(v.screenshot)
    title = v.values["document.title"]
    assert title == "intransit report: hostile.pcap (1 capture, 2 flows)" and "XSS" not in title
    assert v.values[PROBES[1]] == 0 and v.values[PROBES[4]] == "0"
    images = v.values[PROBES[2]]
    assert len(images) >= 5 and all(i.startswith("data:image/svg+xml;base64") and not i.endswith(":0")
                                    for i in images), images  # every figure decoded and drawn
    text = v.values["document.body.innerText"]
    for payload in (SNI, CN, HOST):
        assert payload in text, payload
    assert "<svg onload=\"document.title='XSS-UA'\">" in text
    for heading in ("Verdict", "Egress traffic by protection", "Findings by rule", "Destinations", "Certificates",
                    "TLS versions and ciphers", "Coverage", "Method"):
        assert heading in text
