"""Path scans (issue 16 items 1, 8, 13; issue 10 item 8): nothing skipped without a word, FIFOs
never opened by a scan, the same capture read once, file names that are not UTF-8."""

from __future__ import annotations

import bz2
import gzip
import os
import threading
import warnings
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.packet import Raw
from support.pcap_helpers import eth, pcap_bytes

import analyzer
from analyzer.errors import CaptureError

T0 = 1_700_000_000_000_000_000


def _capture(sport: int, payload: bytes = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", n: int = 3) -> bytes:
    pkts = [bytes(eth() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=sport, dport=80, flags="PA", seq=i * 100)
                  / Raw(payload)) for i in range(n)]
    return pcap_bytes([(T0 + i * 1000, p) for i, p in enumerate(pkts)], nanos=True)


def _run(paths, **kw):
    problems = []
    result = analyzer.analyze(paths, on_problem=problems.append, dissect=False, **kw)
    return result, problems


def _packets(result) -> int:
    f = result.flows
    return int(f["packets_to_server"].sum() + f["packets_to_client"].sum())


# --------------------------------------------------------------------------- 16.1 FIFO in a scan
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs")
def test_fifo_in_a_scanned_directory_is_skipped_not_opened(tmp_path):
    """`mkfifo d/p.pcap; intransit flows d` never returned: every file found was opened."""
    (tmp_path / "a.pcap").write_bytes(_capture(1000))
    fifo = tmp_path / "p.pcap"
    os.mkfifo(fifo)
    out: list = []
    worker = threading.Thread(target=lambda: out.append(_run(str(tmp_path))), daemon=True)
    worker.start()
    worker.join(60)
    if worker.is_alive():  # release the blocked open() so the thread ends, then fail
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        pytest.fail("the scan opened the FIFO and blocked")
    result, problems = out[0]
    assert _packets(result) == 3
    assert [(p.source, p.kind) for p in problems] == [(str(fifo), "not_regular_file")]
    assert "FIFO" in problems[0].detail
    row = result.sources.set_index("source").loc[str(fifo)]
    assert row["status"] == "skipped" and "FIFO" in row["problem"]


# ------------------------------------------------------------------- 16.8: say what was skipped
def test_every_skip_is_said_with_a_reason(tmp_path, monkeypatch):
    (tmp_path / "a.pcap").write_bytes(_capture(1000))
    (tmp_path / "damaged.pcap").write_bytes(b"\0\0\0\0" + _capture(1001)[4:])  # header damaged
    (tmp_path / ".hidden.pcap").write_bytes(_capture(1002))  # dotfile with a capture in it
    (tmp_path / ".cache").mkdir()  # a hidden directory is walked, as it always was
    (tmp_path / ".cache" / "c.pcap").write_bytes(_capture(1004))
    (tmp_path / "loop").symlink_to(tmp_path)  # a symbolic link to a directory: not followed, said
    (tmp_path / "README.txt").write_text("notes")  # plainly not a capture: left alone, silently
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "b.pcap").write_bytes(_capture(1003))
    real_scandir = os.scandir

    def scandir(path=None):  # the test runs as root, which lists any directory: refuse this one
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    result, problems = _run(str(tmp_path))
    assert _packets(result) == 6  # a.pcap and .cache/c.pcap
    kinds = {Path(p.source).name: p.kind for p in problems}
    assert kinds == {"damaged.pcap": "not_a_capture", ".hidden.pcap": "hidden", "loop": "symlink_not_followed",
                     "locked": "unlistable_directory"}
    assert all(p.detail for p in problems)
    src = result.sources.set_index("source")
    for p in problems:
        assert src.loc[p.source, "status"] == "skipped" and src.loc[p.source, "problem"] == p.detail
    anomalies = result.anomalies
    assert set(anomalies.loc[anomalies["layer"] == "source", "kind"]) == set(kinds.values())
    with pytest.raises(CaptureError, match="strict"):
        _run(str(tmp_path), strict=True)


def test_warnings_without_a_handler(tmp_path):
    (tmp_path / "a.pcap").write_bytes(_capture(1000))
    (tmp_path / "b.pcap").write_bytes(b"not a capture at all")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        analyzer.analyze(str(tmp_path), dissect=False)
    assert any("b.pcap" in str(w.message) and "not a pcap" in str(w.message) for w in caught)


# ------------------------------------------------------------- duplicates: decided by content
def test_compressed_twin_with_other_content_is_read(tmp_path):
    """x.pcap.gz beside x.pcap was skipped by name even when different: it hid an HTTP flow."""
    (tmp_path / "x.pcap").write_bytes(_capture(1000))
    (tmp_path / "x.pcap.gz").write_bytes(gzip.compress(_capture(2000, b"GET /secret HTTP/1.1\r\n\r\n")))
    result, problems = _run(str(tmp_path))
    assert sorted(result.flows["client_port"].tolist()) == [1000, 2000]
    assert not problems


@pytest.mark.parametrize("how", ["compressed twin", "bzip2 twin", "symlink", "named twice", "hard link"])
def test_the_same_capture_twice_is_read_once(tmp_path, how):
    """Giving the same capture twice doubled every count of its flows."""
    data = _capture(1000)
    first = tmp_path / "x.pcap"
    first.write_bytes(data)
    if how == "compressed twin":
        second = tmp_path / "x.pcap.gz"
        second.write_bytes(gzip.compress(data))
    elif how == "bzip2 twin":
        second = tmp_path / "other-name.bz2"
        second.write_bytes(bz2.compress(data))
    elif how == "symlink":
        second = tmp_path / "link.pcap"
        second.symlink_to(first)
    elif how == "hard link":
        second = tmp_path / "hard.pcap"
        os.link(first, second)
    else:
        second = first
    result, problems = _run([str(first), str(second)])
    assert _packets(result) == 3  # not 6
    assert [p.kind for p in problems] == ["duplicate"]
    assert str(first) in problems[0].detail or how == "named twice"
    rows = result.sources
    dup = rows[rows["status"] == "duplicate"]
    assert len(dup) == 1 and dup["source"].iloc[0] == str(second)
    assert "read once" in dup["problem"].iloc[0]
    assert len(rows) == 2
    strict, _ = _run([str(first), str(second)], strict=True)  # nothing is lost: not an error
    assert _packets(strict) == 3


def test_same_leading_bytes_but_different_content_are_both_read(tmp_path):
    """Equal first 64 KiB is only a reason to compare whole streams, not a duplicate."""
    big = _capture(1000, b"x" * 1000, n=100)  # more than the 64 KiB compared first
    (tmp_path / "a.pcap").write_bytes(big)
    (tmp_path / "b.pcap").write_bytes(big + _capture(3000)[24:])  # one more flow at the end
    result, problems = _run(str(tmp_path))
    assert not problems and _packets(result) == 200 + 3


def test_scan_reports_duplicates_with_the_file_kept():
    from analyzer.sources.scan import scan_paths

    scan = scan_paths(["-", "-"])
    assert scan.files == ["-"] and [(s.kind, s.duplicate_of) for s in scan.skipped] == [("duplicate", "-")]


# ---------------------------------------------------------------- 16.13 names that are not UTF-8
@pytest.mark.skipif(os.name != "posix", reason="POSIX file names are bytes")
def test_non_utf8_file_names(tmp_path):
    """One such name in a scan made the whole run fail without naming it; analyze(b"/p") iterated."""
    d = os.fsencode(tmp_path)
    with open(os.path.join(d, b"caf\xe9.pcap"), "wb") as fh:
        fh.write(_capture(1000))
    with open(os.path.join(d, b"bad\xff.pcap"), "wb") as fh:
        fh.write(b"junk")
    for given in (str(tmp_path), d, [d]):
        result, problems = _run(given)
        assert _packets(result) == 3
        assert result.flows["source"].tolist() == [str(tmp_path / "caf\\xe9.pcap")]
        assert [p.source for p in problems] == [str(tmp_path / "bad\\xff.pcap")]
        for frame in (result.flows, result.sources, result.anomalies):
            for v in frame["source"].dropna():
                v.encode("utf-8")  # an Arrow/Parquet column and stderr take it
    with pytest.raises(CaptureError) as info:
        _run(os.path.join(d, b"bad\xff.pcap"))
    assert "bad\\xff.pcap" in str(info.value)
