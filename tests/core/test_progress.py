"""The progress seam: analyze(on_progress=...) reports captures, packets and bytes of the files as
stored while it reads, and changes nothing in the frames."""

from __future__ import annotations

import gzip
import io
import itertools
import random
import sys
from pathlib import Path

import pytest
from support.pcap_helpers import eth, pcap_bytes

import analyzer
from analyzer.engines.progress import Progress, metered
from analyzer.sources.base import CaptureFile, open_sources

CAPTURES = Path(__file__).resolve().parents[2] / "captures"


def _frames(n: int, size: int = 1200) -> bytes:
    from scapy.layers.inet import IP, UDP
    from scapy.packet import Raw

    noise = random.Random(n).randbytes(size * 2)  # payload that gzip cannot shrink much
    records = []
    for i in range(n):
        payload = noise[i % size: i % size + size]
        pkt = eth() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=40000 + i % 50, dport=9999) / Raw(payload)
        records.append((1_700_000_000_000_000_000 + i * 1_000_000, bytes(pkt)))
    return pcap_bytes(records, nanos=True)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 3.7 MB capture (several reader chunks) and its gzip copy."""
    d = tmp_path_factory.mktemp("progress")
    data = _frames(3000)
    plain, packed = d / "big.pcap", d / "big2.pcap.gz"
    plain.write_bytes(data)
    packed.write_bytes(gzip.compress(_frames(3001), 1))
    return plain, packed


def _run(paths: list[str], **kw: object) -> tuple[analyzer.Analysis, list[Progress]]:
    seen: list[Progress] = []
    result = analyzer.analyze(paths, on_progress=seen.append, **kw)  # type: ignore[arg-type]
    return result, seen


def test_progress_counts_files_packets_and_stored_bytes(big: tuple[Path, Path]) -> None:
    plain, packed = big
    result, seen = _run([str(plain), str(packed)])
    total = plain.stat().st_size + packed.stat().st_size  # the gzip file's compressed size
    assert {p.files_total for p in seen} == {2} and {p.bytes_total for p in seen} == {total}
    last = seen[-1]
    assert last.files_done == 2 and last.current is None
    assert last.packets == int(result.sources["packets"].sum()) == 6001
    assert last.bytes_done == total
    # monotonic, and within each capture the position moves through the file (more than one step)
    for a, b in itertools.pairwise(seen):
        assert b.packets >= a.packets and b.bytes_done >= a.bytes_done and b.files_done >= a.files_done
        assert b.elapsed >= a.elapsed
    inside = [p for p in seen if p.current == str(plain) and 0 < p.bytes_done < plain.stat().st_size]
    assert len(inside) >= 2, [(p.current, p.bytes_done) for p in seen]
    inside_gz = [p for p in seen if p.current == str(packed)
                 and plain.stat().st_size < p.bytes_done < total]
    assert inside_gz, "the compressed capture's position is its compressed offset"
    assert all(p.eta is not None for p in seen if p.bytes_done and p.elapsed > 0)


def test_progress_changes_no_frame(big: tuple[Path, Path]) -> None:
    plain, _ = big
    with_progress, _seen = _run([str(plain), str(CAPTURES / "tls13_openssl.pcap")])
    without = analyzer.analyze([str(plain), str(CAPTURES / "tls13_openssl.pcap")])
    for name in ("flows", "tls", "certs", "anomalies", "sources"):
        assert with_progress[name].equals(without[name]), name


def test_skipped_paths_are_not_counted_and_stay_recognisable(tmp_path: Path) -> None:
    (tmp_path / "notes.pcap").write_bytes(b"not a capture at all")
    (tmp_path / "a.pcap").write_bytes((CAPTURES / "tls13_openssl.pcap").read_bytes())
    with pytest.warns(UserWarning, match="notes.pcap"):
        result, seen = _run([str(tmp_path)])
    assert {p.files_total for p in seen} == {1}
    assert set(result.sources["status"]) == {"ok", "skipped"}  # the engine still reports the skip


def test_unknown_size_gives_no_estimate(monkeypatch: pytest.MonkeyPatch, big: tuple[Path, Path]) -> None:
    plain, _ = big
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(plain.read_bytes())))
    _result, seen = _run(["-"])
    assert {p.bytes_total for p in seen} == {None}
    assert all(p.eta is None for p in seen)
    assert seen[-1].packets == 3000 and seen[-1].files_done == 1


def test_a_damaged_capture_still_ends_its_file(tmp_path: Path, big: tuple[Path, Path]) -> None:
    """A capture cut inside a record is read up to the damage: the file still counts as done."""
    plain, _ = big
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(plain.read_bytes()[:1_500_007])
    with pytest.warns(UserWarning):
        _result, seen = _run([str(cut), str(plain)])
    assert seen[-1].files_done == 2
    assert seen[-1].bytes_done == seen[-1].bytes_total == cut.stat().st_size + plain.stat().st_size


def test_metered_sources_keep_their_names_and_attributes(big: tuple[Path, Path]) -> None:
    plain, _ = big
    sources = open_sources([str(plain)])
    wrapped = metered(sources, lambda p: None, clock=iter(range(100)).__next__)
    assert [w.name for w in wrapped] == [s.name for s in sources]
    assert wrapped[0].path == str(plain)  # what an engine may ask of a CaptureFile
    assert isinstance(sources[0], CaptureFile) and sources[0].size() == plain.stat().st_size


def test_a_metered_source_pickles_as_the_plain_source(big: tuple[Path, Path]) -> None:
    """An engine that sends sources to other processes gets them without the callback (which may hold
    a terminal stream and cannot cross); reading them there reports nothing and loses nothing."""
    import pickle

    plain, _ = big
    seen: list[Progress] = []
    wrapped = metered(open_sources([str(plain)]), seen.append)
    back = pickle.loads(pickle.dumps(wrapped[0]))
    assert isinstance(back, CaptureFile) and back == CaptureFile(str(plain))
    assert sum(len(b) for b in back.batches()) == 3000 and seen == []
