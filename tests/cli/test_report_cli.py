"""`intransit report` end to end: the three formats, standard output, the baseline, and errors as one
line with exit code 2 (nothing written)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = ROOT / "captures"


def intransit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "analyzer", *args], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)


def test_report_formats_and_baseline(tmp_path: Path) -> None:
    tls10, tls11, http = (str(CAPTURES / n) for n in ("tls10_openssl.pcap", "tls11_openssl.pcap", "http_plain.pcap"))
    old = tmp_path / "old.parquet"
    assert intransit("audit", tls10, http, "--vpc", "10.77.0.0/16", "--format", "parquet", "--out",
                     str(old)).returncode == 1  # high findings: the audit gate fails, the file is written
    html = tmp_path / "r.html"
    r = intransit("report", tls10, tls11, "--vpc", "10.77.0.0/16", "--out", str(html), "--baseline", str(old))
    assert r.returncode == 0 and r.stdout == "", r.stderr  # findings do not fail a report: audit is the gate
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>") and "Since the baseline:" in page
    assert "tls-legacy-version" in page and "Legacy SSL/TLS version negotiated" in page
    r = intransit("report", tls10, tls11, "--vpc", "10.77.0.0/16", "--out", "-", "--format", "json",
                  "--baseline", str(old), "--profile", "strict")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["method"]["profile"] == "strict" and doc["method"]["vpc"] == ["10.77.0.0/16"]
    assert doc["changes"]["new"] >= 1 and doc["changes"]["resolved"] >= 1 and doc["changes"]["unchanged"] >= 1
    assert doc["capture"]["captures"] == 2 and doc["flows"]["total"] == 2
    md = tmp_path / "r.md"
    assert intransit("report", tls10, "--format", "md", "--out", str(md)).returncode == 0
    assert md.read_text().startswith(
        "## intransit: tls10\\_openssl.pcap (1 capture, 1 flow)\n\n**Fails the sec09 profile")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staged file left


def test_report_errors_are_one_line_and_write_nothing(tmp_path: Path) -> None:
    tls10 = str(CAPTURES / "tls10_openssl.pcap")
    out = tmp_path / "r.html"
    cases = [
        (("--baseline", str(tmp_path / "missing.parquet")), "--baseline"),
        (("--baseline", tls10), "not a findings Parquet file"),
        (("--profile", "no-such-profile"), "no-such-profile"),
        (("--vpc", "10.0.0.0/33"), "10.0.0.0/33"),
    ]
    for extra, words in cases:
        r = intransit("report", tls10, "--out", str(out), *extra)
        assert r.returncode == 2, (extra, r.stderr)
        lines = [line for line in r.stderr.splitlines() if not line.startswith("warning: ")]
        assert len(lines) == 1 and lines[0].startswith("intransit: error: ") and words in lines[0], r.stderr
        assert not out.exists()
    r = intransit("report", tls10, "--out", str(tmp_path / "no" / "dir" / "r.html"))
    assert r.returncode == 2 and r.stderr.strip() == f"intransit: error: {tmp_path}/no/dir/r.html: no such directory"
    r = intransit("report", tls10, "--out", tls10)
    assert r.returncode == 2 and "is one of the captures given" in r.stderr
    r = intransit("report", tls10)
    assert r.returncode == 2 and "Missing option '--out'" in r.stderr
    r = intransit("report", str(tmp_path / "absent.pcap"), "--out", str(out))
    assert r.returncode == 2 and not out.exists()
