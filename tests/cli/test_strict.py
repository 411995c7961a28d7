"""`--strict` / `analyze(strict=True)`: a damaged capture ends the run, and the message says so
(without strict the same problem is a warning and the packets before it are kept)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner
from scapy.layers.inet import IP, UDP
from scapy.packet import Raw
from support.pcap_helpers import eth, pcap_bytes

import analyzer
from analyzer.cli import main
from analyzer.errors import CaptureError

FRAMES = [bytes(eth() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5000 + i, dport=53) / Raw(b"q" * 20))
          for i in range(3)]  # fmt: skip


def _cut(tmp_path: Path) -> Path:
    """A pcap whose last record is cut 3 bytes short."""
    path = tmp_path / "cut.pcap"
    path.write_bytes(pcap_bytes([(1_700_000_000_000_000_000 + i, f) for i, f in enumerate(FRAMES)], nanos=True)[:-3])
    return path


def test_without_strict_the_packets_before_the_damage_are_kept(tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        flows = analyzer.analyze([str(_cut(tmp_path))], frames=("flows",)).flows
    assert len(flows) == 2
    assert [str(w.message).endswith("reading stopped there, the packets before it are kept") for w in caught] == [True]


def test_strict_says_the_run_stops_and_nothing_is_written(tmp_path: Path) -> None:
    path = _cut(tmp_path)
    with pytest.raises(CaptureError) as err:
        analyzer.analyze([str(path)], strict=True)
    assert err.value.message.endswith("; strict mode: the run stops here and nothing is written")
    assert "kept" not in str(err.value)
    out = tmp_path / "flows.csv"
    r = CliRunner().invoke(main, ["flows", str(path), "--strict", "--format", "csv", "--out", str(out)])
    assert r.exit_code == 2 and not out.exists()
    left = 16 + len(FRAMES[-1]) - 3  # the cut record: its header and what is left of its packet
    assert r.stderr == (f"intransit: error: {path} at byte {path.stat().st_size - left}: file ends {left} bytes into "
                        "a packet record; strict mode: the run stops here and nothing is written\n")
