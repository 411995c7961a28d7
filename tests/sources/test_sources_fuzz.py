"""Hypothesis fuzz targets of the capture readers, built from structure rather than from a few seeds:

- pcap: every magic (microsecond / nanosecond, both byte orders), any link type and snap length,
  records with any lengths (caplen above the snap length or the wire length, zero, absurd);
- pcapng: sections of every block type the reader knows (SHB, IDB with if_tsresol / if_tsoffset and
  other options, EPB with options, SPB, the obsolete PB, NRB, ISB, DSB, custom and unknown blocks),
  in either byte order, several sections, packets naming interfaces that do not exist;
- each then damaged (`mutate`: cuts, byte edits, insertions, deletions, duplications), read from a
  file, from a non-seekable stream on standard input (the pipe / FIFO reader), and compressed with
  each decompressor (gzip, bzip2, xz, zstd) then cut or extended with junk.

Properties: only CaptureError (one line, naming the input) escapes; every batch is consistent (its
packets lie inside its buffer, lengths non-negative, one link type per packet); every problem's
offset lies inside the decompressed input; reading is bounded in time.
CI runs `examples(...)`; INTRANSIT_FUZZ_EXAMPLES=N runs N (tests/HARDENING_NOTES.md).
"""

from __future__ import annotations

import bz2
import io
import lzma
import os
import struct
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st
from support.fuzz_helpers import examples, fuzz_settings, mutate
from support.pcap_helpers import block, epb, idb, opb, options, shb, spb

from analyzer.errors import CaptureError
from analyzer.sources.readers import read_capture

LINKTYPES = [0, 1, 9, 12, 14, 50, 101, 105, 108, 113, 127, 228, 229, 239, 276, 4242, 65535]
MAGICS = [0xA1B2C3D4, 0xA1B23C4D]
FRAME = bytes.fromhex("020000000002020000000001080045000020000100004011f7c50a0000010a000002"
                      "03e8003500080000")  # Ethernet / IPv4 / UDP, 42 bytes
_INSERTS = (b"\x0a\x0d\x0d\x0a", b"\x4d\x3c\x2b\x1a", b"\xff\xff\xff\xff", b"\x06\x00\x00\x00", b"\x00" * 4)
SLOW = 2.0  # seconds per input (a few KB): far above any honest read, far below a hang


def _lengths(draw: Any, data: bytes) -> tuple[int, int]:
    """(captured, wire) length fields: usually honest, sometimes anything."""
    if draw(st.integers(0, 3)):
        return len(data), len(data) + draw(st.sampled_from([0, 0, 4, 1000]))
    return draw(st.sampled_from([0, len(data) + 1, 1 << 16, 1 << 31, 0xFFFFFFFF])), draw(st.integers(0, 0xFFFFFFFF))


@st.composite
def pcap_file(draw: Any) -> bytes:
    order = draw(st.sampled_from("<>"))
    magic = draw(st.sampled_from(MAGICS))
    snaplen = draw(st.sampled_from([0, 64, 65535, 262144, 0xFFFFFFFF]))
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, draw(st.sampled_from(LINKTYPES)))]
    for _ in range(draw(st.integers(0, 6))):
        data = draw(st.sampled_from([FRAME, b"", FRAME[:14]])) + draw(st.binary(max_size=40))
        cap, wire = _lengths(draw, data)
        frac = draw(st.sampled_from([0, 999_999, 1_000_000, 0xFFFFFFFF]))
        out.append(struct.pack(order + "IIII", draw(st.integers(0, 0xFFFFFFFF)), frac, cap, wire) + data)
    return b"".join(out)


@st.composite
def pcapng_block(draw: Any, order: str) -> bytes:
    kind = draw(st.sampled_from(["idb", "epb", "epb", "spb", "opb", "nrb", "isb", "dsb", "custom", "unknown"]))
    data = FRAME + draw(st.binary(max_size=24))
    if kind == "idb":
        extra = draw(st.lists(st.tuples(st.sampled_from([2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 15]),
                                        st.binary(max_size=12)), max_size=3))
        return idb(draw(st.sampled_from(LINKTYPES)), order,
                   tsresol=draw(st.sampled_from([None, 0, 3, 6, 9, 0x80 | 10, 0x80 | 63, 63, 255])),
                   tsoffset=draw(st.sampled_from([None, 0, 1 << 40, -(1 << 62), (1 << 63) - 1])),
                   snaplen=draw(st.sampled_from([0, 64, 65535, 0xFFFFFFFF])), extra=extra)
    if kind == "epb":
        opts = draw(st.lists(st.tuples(st.sampled_from([1, 2, 3, 4, 5, 6, 7, 0xBAD]), st.binary(max_size=12)),
                             max_size=3))
        ticks = draw(st.sampled_from([0, 1_700_000_000_000_000, (1 << 64) - 1]))
        return epb(draw(st.sampled_from([0, 0, 1, 7])), ticks, data, order, opts=opts,
                   wire=draw(st.sampled_from([None, 0, 9000, 0xFFFFFFFF])))
    if kind == "spb":
        return spb(data, order, wire=draw(st.sampled_from([None, 10, 0xFFFFFFFF])))
    if kind == "opb":
        return opb(draw(st.sampled_from([0, 3])), 1_700_000_000_000_000, data, order)
    if kind == "nrb":  # Name Resolution Block: IPv4 record, end of records, options
        rec = struct.pack(order + "HH", 1, 12) + bytes([10, 0, 0, 1]) + b"host.\0\0\0"
        return block(4, rec + struct.pack(order + "HH", 0, 0) + options([(2, b"dns")], order), order)
    if kind == "isb":  # Interface Statistics Block
        body = struct.pack(order + "III", draw(st.sampled_from([0, 9])), 0, 1)
        return block(5, body + options([(4, struct.pack(order + "Q", 5))], order), order)
    if kind == "dsb":  # Decryption Secrets Block: a TLS key log
        secrets = b"CLIENT_RANDOM " + b"a" * 64 + b" " + b"b" * 96 + b"\n"
        return block(10, struct.pack(order + "II", 0x544C534B, len(secrets)) + secrets, order)
    if kind == "custom":  # Custom Block (copyable), private enterprise number then data
        return block(0x00000BAD, struct.pack(order + "I", 32473) + draw(st.binary(max_size=16)), order)
    return block(draw(st.integers(7, 0x7FFFFFFF)), draw(st.binary(max_size=32)), order)


@st.composite
def pcapng_file(draw: Any) -> bytes:
    out = []
    for _ in range(draw(st.integers(1, 3))):
        order = draw(st.sampled_from("<>"))
        out.append(shb(order, draw(st.sampled_from([(), [(2, b"x86"), (4, b"intransit")]]))))
        if draw(st.integers(0, 4)):
            out.append(idb(1, order))
        out.extend(draw(st.lists(pcapng_block(order), max_size=8)))
    return b"".join(out)


capture = st.one_of(pcap_file(), pcapng_file())


class _Pipe(io.RawIOBase):
    """A non-seekable byte stream, as a pipe or FIFO on standard input reads."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, b: Any) -> int:
        chunk = self._data.read(min(len(b), 4093))  # short reads, as pipes give
        b[: len(chunk)] = chunk
        return len(chunk)


class _Stdin:
    def __init__(self, data: bytes) -> None:
        self.buffer = io.BufferedReader(_Pipe(data))


@cache
def _warm() -> None:
    """Read a valid pcap and pcapng once, untimed: the first read of a process loads (or compiles)
    the record walkers, seconds on a busy machine, which is not the input's cost."""
    for name, data in (("w.pcap", struct.pack("<IHHiIII", MAGICS[0], 2, 4, 0, 0, 65535, 1)
                        + struct.pack("<IIII", 1, 0, len(FRAME), len(FRAME)) + FRAME),
                       ("w.pcapng", shb("<") + idb(1, "<") + epb(0, 1, FRAME, "<"))):
        with tempfile.TemporaryDirectory(prefix="intransit-fuzz-warm-") as tmp:
            path = os.path.join(tmp, name)
            with open(path, "wb") as fh:
                fh.write(data)
            for _ in read_capture(path):
                pass


def _read(path: str, size: int, chunk: int) -> float:
    """Read `path` checking every property; the time it took."""
    started = time.perf_counter()
    try:
        for b in read_capture(path, chunk):
            n = len(b.offset)
            assert n == len(b.caplen) == len(b.wirelen) == len(b.ts_ns) == len(b.linktype)
            assert (b.offset >= 0).all() and (b.caplen >= 0).all()
            assert (b.offset + b.caplen <= len(b.buf)).all()
            for p in b.problems:
                assert p.offset is None or 0 <= p.offset <= size, (p, size)
                assert p.detail and "\n" not in p.detail
    except CaptureError as exc:
        assert exc.message and "\n" not in str(exc)
    return time.perf_counter() - started


def _check(source: Callable[[], str], size: int, chunk: int) -> None:
    """`source()` names the input (and makes it ready to read again). An input slower than SLOW
    is read twice more and judged by its best time: a stall of a shared machine does not repeat,
    a read whose work blows up with the input does."""
    _warm()
    took = _read(source(), size, chunk)
    if took >= SLOW:
        took = min(took, *(_read(source(), size, chunk) for _ in range(2)))
    assert took < SLOW


@fuzz_settings(examples(150))
@given(data=capture, chunk=st.sampled_from([64, 100, 4096, 1 << 20]), draw_=st.data())
def test_damaged_captures_read_from_a_file(tmp_path_factory, data, chunk, draw_):
    damaged = mutate(draw_.draw, data, _INSERTS) if draw_.draw(st.booleans()) else data
    path = tmp_path_factory.mktemp("f") / "c.bin"
    path.write_bytes(damaged)
    _check(lambda: str(path), len(damaged), chunk)


@fuzz_settings(examples(150))
@given(data=capture, draw_=st.data())
def test_damaged_captures_read_from_a_pipe(data, draw_):
    damaged = mutate(draw_.draw, data, _INSERTS)
    with pytest.MonkeyPatch.context() as mp:
        def stdin() -> str:
            mp.setattr(sys, "stdin", _Stdin(damaged))  # a fresh pipe for each read
            return "-"

        _check(stdin, len(damaged), 4096)


COMPRESSORS = {
    "gzip": lambda d: _gzip(d),
    "bzip2": lambda d: bz2.compress(d, 1),
    "xz": lzma.compress,
    "zstd": lambda d: zstandard.ZstdCompressor().compress(d),
}


def _gzip(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


@fuzz_settings(examples(100))
@given(data=capture, kind=st.sampled_from(sorted(COMPRESSORS)), draw_=st.data())
def test_damaged_compressed_captures(tmp_path_factory, data, kind, draw_):
    packed = COMPRESSORS[kind](data)
    damaged = mutate(draw_.draw, packed, (packed[:4], b"\x00" * 8, b"\xff" * 4))
    path = tmp_path_factory.mktemp("z") / "c.bin"
    path.write_bytes(damaged)
    # offsets are of the decompressed stream: bounded by what decompression can yield of the input
    _check(lambda: str(path), max(len(data), 1) * 4 + (1 << 20), 4096)
