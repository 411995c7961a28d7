"""Hostile or unusual inputs to the readers (issue 16): streams, decompressor damage, pcapng shapes.

Every capture here is made by the test; each test failed before its fix.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP
from scapy.packet import Raw
from support.fuzz_helpers import examples, fuzz_settings
from support.pcap_helpers import ETHERNET, Section, epb, idb, pcap_bytes, shb

from analyzer.errors import CaptureError
from analyzer.sources.readers import read_capture

T0 = 1_700_000_000_000_000_000


def _frames(n: int, size: int = 200) -> list[bytes]:
    from support.pcap_helpers import eth

    return [bytes(eth() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1000 + i % 50000, dport=80)
                  / Raw(bytes([i % 256]) * size)) for i in range(n)]


def _read(path: str | Path) -> tuple[list[bytes], list]:
    pkts, problems = [], []
    for b in read_capture(str(path)):
        pkts += [b.packet(i) for i in range(len(b))]
        problems += b.problems
    return pkts, problems


FRAMES = _frames(3000)
PCAP = pcap_bytes([(T0 + i * 1000, f) for i, f in enumerate(FRAMES)], nanos=True)

COMPRESS = {
    "gzip": gzip.compress,
    "bzip2": lambda d: bz2.compress(d, 1),  # 100 kB blocks: a cut keeps the blocks before it
    "xz": lzma.compress,
    "zstd": lambda d: zstandard.ZstdCompressor().compress(d),
}


# ------------------------------------------------------------------- 16.7 gzip trailing garbage
def test_gzip_with_trailing_garbage_keeps_every_packet(capture_file):
    """`gzip -c x.pcap > x.gz; printf JUNK >> x.gz` used to read nothing (gzip -dc recovers all)."""
    comp = gzip.compress(PCAP)
    pkts, problems = _read(capture_file("x.pcap.gz", comp + b"JUNK"))
    assert pkts == FRAMES
    assert [p.kind for p in problems] == ["trailing_data"]
    assert problems[0].offset == len(PCAP)  # decompressed offset: everything before was read
    assert f"compressed byte {len(comp)}" in problems[0].detail and "4 bytes" in problems[0].detail


@pytest.mark.parametrize("kind", ["gzip", "bzip2", "xz", "zstd"])
def test_concatenated_members_are_all_read(capture_file, kind):
    """`cat a.gz b.gz` (and pzstd's many frames) is one stream: every member is read."""
    half = 24 + sum(16 + len(f) for f in FRAMES[:1500])
    comp = COMPRESS[kind](PCAP[:half]) + COMPRESS[kind](PCAP[half:])
    pkts, problems = _read(capture_file("m.bin", comp))
    assert pkts == FRAMES and not problems


def test_damaged_gzip_keeps_the_last_read_before_the_damage(capture_file):
    """A damaged deflate stream used to lose the last read of up to 64 KiB (69 packets)."""
    big = pcap_bytes([(T0 + i, f) for i, f in enumerate(_frames(20000, 60))], nanos=True)
    comp = bytearray(gzip.compress(big, compresslevel=1))
    cut = len(comp) - 2000
    comp[cut : cut + 50] = b"\xff" * 50  # damage near the end: almost everything decompresses
    pkts, problems = _read(capture_file("d.gz", bytes(comp)))
    # what zlib decompressed before the damage, independently
    d = gzip.zlib.decompressobj(31)  # type: ignore[attr-defined]
    good = b""
    try:
        for i in range(0, len(comp), 512):
            good += d.decompress(bytes(comp[i : i + 512]))
    except gzip.zlib.error:  # type: ignore[attr-defined]
        pass
    whole = 0
    pos = 24
    while pos + 16 <= len(good):
        n = int.from_bytes(good[pos + 8 : pos + 12], "little")
        if pos + 16 + n > len(good):
            break
        whole += 1
        pos += 16 + n
    assert len(pkts) >= whole - 1 > 19000  # at most the record cut by the damage is lost
    decomp = [p for p in problems if p.kind == "decompression"]
    assert decomp and "compressed byte" in decomp[0].detail and "decompressed byte" in decomp[0].detail


# ----------------------------------------------------------------- 16.6 truncated compression
@pytest.mark.parametrize("kind", ["gzip", "bzip2", "xz", "zstd"])
def test_stream_cut_inside_a_block_is_reported_with_offsets(capture_file, kind):
    """A zstd stream cut inside a block ended silently (exit 0, even with --strict)."""
    comp = COMPRESS[kind](PCAP)
    cut = comp[: len(comp) * 2 // 3]
    pkts, problems = _read(capture_file("cut.bin", cut))
    assert 0 < len(pkts) < len(FRAMES) and pkts == FRAMES[: len(pkts)]
    decomp = [p for p in problems if p.kind == "decompression"]
    assert len(decomp) == 1, problems
    assert f"compressed byte {len(cut)}" in decomp[0].detail and "premature end" in decomp[0].detail
    assert decomp[0].offset is not None and decomp[0].offset >= 24 + sum(16 + len(f) for f in pkts)


def test_zstd_cut_on_a_record_boundary_is_still_reported(capture_file):
    """The cut that went unseen: zstd blocks end on record boundaries, the frame does not end."""
    cctx = zstandard.ZstdCompressor()
    obj = cctx.compressobj()
    comp = obj.compress(PCAP[:24 + sum(16 + len(f) for f in FRAMES[:1000])])
    comp += obj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
    whole = comp + obj.compress(PCAP[24 + sum(16 + len(f) for f in FRAMES[:1000]):]) + obj.flush()
    pkts, problems = _read(capture_file("z.zst", comp))  # the frame stops after a flushed block
    assert pkts == FRAMES[:1000]
    assert [p.kind for p in problems] == ["decompression"]
    assert _read(capture_file("w.zst", whole)) == (FRAMES, [])


@pytest.mark.parametrize("kind", ["gzip", "bzip2", "xz", "zstd"])
def test_small_truncated_file_says_why_not_empty(capture_file, kind):
    """A small truncated .zst said "empty file"."""
    comp = COMPRESS[kind](PCAP[:400])
    with pytest.raises(CaptureError) as info:
        _read(capture_file("s.bin", comp[: len(comp) // 2]))  # no whole packet left
    assert "empty file" not in info.value.message
    assert "decompression failed" in info.value.message and "compressed byte" in info.value.message


# ----------------------------------------------------------------------------------- 16.10 pipes
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs")
@pytest.mark.parametrize("compressed", [False, True])
def test_named_fifo_is_read_as_a_stream(tmp_path, compressed):
    """`intransit flows <(cat x.pcap)` or a FIFO failed with "File or stream is not seekable"."""
    fifo = tmp_path / "p.pcap"
    os.mkfifo(fifo)
    data = gzip.compress(PCAP) if compressed else PCAP

    def feed() -> None:
        with open(fifo, "wb") as fh:
            fh.write(data)

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        pkts, problems = _read(fifo)
    finally:
        writer.join(10)
    assert pkts == FRAMES and not problems


@pytest.mark.skipif(sys.platform != "linux", reason="bash process substitution via /dev/fd")
def test_process_substitution_through_the_cli(capture_file):
    path = capture_file("x.pcap", PCAP)
    cmd = f"{sys.executable} -m analyzer flows --no-dissect --format csv <(cat {path})"
    run = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert run.returncode == 0, run.stderr
    assert "not seekable" not in run.stderr
    assert len(run.stdout.splitlines()) == 1 + len(FRAMES)  # one flow per packet (source ports differ)


# ------------------------------------------------------------------------- 16.17 tiny files
@pytest.mark.parametrize("data", [b"\x01", b"\x01\x02", b"\xd4\xc3\xb2"])
def test_tiny_file_error_quotes_only_its_bytes(capture_file, data):
    """A 1-3 byte file's error quoted uninitialised memory ("starts with 0x011498d4")."""
    with pytest.raises(CaptureError) as info:
        _read(capture_file("t.pcap", data))
    assert f"0x{data.hex()})" in info.value.message
    assert f"only {len(data)} bytes" in info.value.message


# ------------------------------------------------------------------ 16.2 one IDB per packet
def test_an_interface_block_before_every_packet_reads_in_linear_time(capture_file):
    """20,000 packets each behind its own IDB took more than 300 s (quadratic in interfaces)."""
    fr = _frames(20000, 40)
    blocks = [shb()]
    for i, f in enumerate(fr):
        blocks += [idb(ETHERNET, tsresol=9), epb(i, T0 + i, f)]
    path = capture_file("idb.pcapng", b"".join(blocks))
    start = time.perf_counter()
    import analyzer

    result = analyzer.analyze(str(path), dissect=False, frames=("flows",))
    took = time.perf_counter() - start
    assert int(result.flows["packets_to_server"].sum()) == 20000
    assert took < 20, took  # about 1 s here; the quadratic reader needed > 300 s
    batches = list(read_capture(str(path)))
    assert sum(len(b) for b in batches) == 20000 and len(batches) <= 4  # one per 1 MiB read


# ---------------------------------------------------------- 16.18 timestamp overflow, 16.9 link
def test_timestamps_that_overflow_are_reported_not_wrapped(capture_file):
    """if_tsoffset = 2^62 s used to wrap the packet's time silently (to 1970 and thereabouts)."""
    f = _frames(2)
    sec = Section().interface(ETHERNET, tsresol=9).interface(ETHERNET, tsresol=9, tsoffset=1 << 62)
    sec.packet(0, T0, f[0]).packet(1, 5, f[1]).packet(0, T0 + 7, f[0])
    times, problems = [], []
    for b in read_capture(str(capture_file("o.pcapng", sec.build()))):
        times += b.ts_ns.tolist()
        problems += b.problems
    assert times == [T0, T0, T0 + 7]  # the overflowing one takes the previous packet's time
    assert [p.kind for p in problems] == ["timestamp_overflow"]
    assert "if_tsoffset 4611686018427387904" in problems[0].detail


def test_largest_times_that_fit_are_exact(capture_file):
    top = (1 << 63) - 1
    sec = Section().interface(ETHERNET, tsresol=9).packet(0, top, _frames(1)[0]).packet(0, top + 1, _frames(1)[0])
    ts, problems = [], []
    for b in read_capture(str(capture_file("t.pcapng", sec.build()))):
        ts += b.ts_ns.tolist()
        problems += b.problems
    assert ts == [top, top] and [p.kind for p in problems] == ["timestamp_overflow"]


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_unsupported_link_type_is_a_problem(capture_file, fmt):
    """A capture of a link type not decoded (radiotap, 127, was one) gave "(no rows)", nothing on stderr."""
    f = b"\x00" * 40
    data = (pcap_bytes([(1, f)], linktype=147) if fmt == "pcap"
            else Section().interface(147).interface(147).packet(0, 1, f).packet(1, 2, f).build())
    pkts, problems = _read(capture_file("w." + fmt, data))
    assert len(pkts) == (1 if fmt == "pcap" else 2)
    assert [p.kind for p in problems] == ["unsupported_linktype"]  # once per link type and file
    assert "link type 147" in problems[0].detail


# ------------------------------------------------------------------------- decompressor fuzzing

SMALL = pcap_bytes([(T0 + i, f) for i, f in enumerate(_frames(300, 100))], nanos=True)
SMALL_FRAMES = _frames(300, 100)
COMPRESSED_SMALL = {k: f(SMALL) for k, f in COMPRESS.items()}


@fuzz_settings(examples(150))
@given(kind=st.sampled_from(sorted(COMPRESS)), cut=st.floats(0, 1), tail=st.binary(max_size=40),
       flips=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), max_size=3))
def test_damaged_compressed_streams_keep_a_prefix_and_never_raise(capture_file, kind, cut, tail, flips):
    """Cut, extended with junk, or with flipped bytes: a CaptureError or packets (with Problems);
    never another exception. A plain cut gives a prefix of the capture and a Problem."""
    data = bytearray(COMPRESSED_SMALL[kind][: max(1, int(len(COMPRESSED_SMALL[kind]) * cut))] + tail)
    for where, xor in flips:
        data[min(len(data) - 1, int(len(data) * where))] ^= xor
    path = capture_file("f.bin", bytes(data))
    try:
        pkts, problems = _read(path)
    except CaptureError as exc:
        assert exc.message
        return
    if not flips and not tail:  # (junk after a cut decompresses as data: another kind of damage)
        assert pkts == SMALL_FRAMES[: len(pkts)]
        if len(data) < len(COMPRESSED_SMALL[kind]):
            assert problems  # a cut is always said
