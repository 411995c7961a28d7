"""Issue 16 item 18 (rest): a fatal error says the packets before the damage are kept only when
some were; a second `-` is <stdin> in the sources frame as on stderr."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CAPTURE = ROOT / "captures" / "tls13_openssl.pcap"
HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)


def _run(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "analyzer", "flows", str(path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize(("name", "body"), [
    ("impossible.pcap", struct.pack("<IIII", 1, 0, 0xFFFFFFF, 0xFFFFFFF) + b"x" * 40),  # first record corrupt
    ("cut.pcap", CAPTURE.read_bytes()[24:30]),  # the file ends inside the first record header
], ids=["corrupt-first-record", "cut-first-record"])
def test_damage_before_the_first_packet_does_not_claim_packets_were_kept(tmp_path: Path, name: str, body: bytes):
    path = tmp_path / name
    path.write_bytes(HEADER + body)
    r = _run(path)
    assert r.returncode == 2 and r.stdout == ""
    assert "before any packet" in r.stderr and "are kept" not in r.stderr, r.stderr
    assert len(r.stderr.splitlines()) == 1


def test_damage_after_packets_says_they_are_kept(tmp_path: Path):
    data = CAPTURE.read_bytes()
    path = tmp_path / "late.pcap"
    path.write_bytes(data + struct.pack("<IIII", 1, 0, 0xFFFFFFF, 0xFFFFFFF))
    r = _run(path)
    assert r.returncode == 0 and "the packets before it are kept" in r.stderr, r.stderr


def test_a_second_dash_is_stdin_in_the_sources_frame():
    code = ("import analyzer, warnings; warnings.simplefilter('ignore'); "
            "r = analyzer.analyze(['-', '-']); print(sorted(r.sources['source'])); "
            "print(sorted(r.anomalies['source']))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, input=CAPTURE.read_bytes(), capture_output=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().splitlines() == ["['<stdin>', '<stdin>']", "['<stdin>']"]
