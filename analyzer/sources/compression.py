"""Decompressing streams that keep everything they decompressed and say where and why they stopped.

The standard library's GzipFile/BZ2File/LZMAFile and zstandard's stream_reader lost data and
errors: a gzip file with trailing garbage read nothing ("not a gzipped file" raised after the
last member, the buffered output of that call dropped), a damaged stream lost the last read (up
to 64 KiB), and a zstd stream cut inside a block ended silently. These streams never raise on
damage: `readinto` returns what was decompressed, then 0 (end of stream), and `problem` says why
it ended early - with the compressed offset (in the file) and the decompressed offset (in the
capture stream) both named.

Memory stays bounded whatever the compression ratio (bombs): output is produced at most
`len(b)` bytes per call.
"""

from __future__ import annotations

import bz2
import io
import lzma
import zlib
from dataclasses import dataclass
from typing import Any, cast

RAW_PIECE = 1 << 16  # compressed bytes read from the file at once

MAGICS = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)


@dataclass(frozen=True, slots=True)
class StreamProblem:
    """Why a decompressing stream ended before its file did (or what it ignored at the end)."""

    kind: str  # "decompression" (stops reading) or "trailing_data" (everything before it was read)
    detail: str
    decompressed_offset: int  # where the capture stream ends: the offset a Problem carries
    compressed_offset: int


def compression_of(head: bytes) -> str | None:
    """The compression a stream starting with `head` uses, or None."""
    for magic, kind in MAGICS:
        if head.startswith(magic):
            return kind
    return None


def open_decompressed(raw: Any, kind: str) -> _Decompressing | _Zstd:
    """A stream of the decompressed bytes of `raw` (which it closes on close())."""
    if kind == "zstd":
        return _Zstd(raw)
    return _Decompressing(raw, kind)


class _Decompressing(io.RawIOBase):
    """gzip, bzip2 and xz (every member / stream in turn) through the decompressor objects.

    Concatenated members are all read (as `gzip -dc` does); bytes after the last member that do
    not start another one are reported as trailing data, not read as an error that loses the rest.
    """

    def __init__(self, raw: Any, kind: str) -> None:
        self._raw = raw
        self.kind = kind
        self._d: Any = self._new()
        self._in = b""  # compressed bytes read but not yet given to the decompressor
        self._read = 0  # compressed bytes read from the file
        self._raw_eof = False
        self.out = 0  # decompressed bytes delivered
        self.problem: StreamProblem | None = None
        self._done = False

    def _new(self) -> Any:
        if self.kind == "gzip":
            return zlib.decompressobj(31)  # gzip header and CRC/size trailer checked by zlib
        if self.kind == "bzip2":
            return bz2.BZ2Decompressor()
        return lzma.LZMADecompressor()

    def readable(self) -> bool:
        return True

    def _fill(self) -> None:
        try:
            data = self._raw.read(RAW_PIECE)
        except OSError as exc:
            self._fail(f"reading the file failed: {exc.strerror or exc}")
            return
        if not data:
            self._raw_eof = True
        self._read += len(data)
        self._in = self._in + data if self._in else data

    _salvaged = b""

    def _salvage(self, d: Any, want: int) -> int:
        """Feed the input of a failed call again in small pieces: the output before the damage.

        Returns the compressed offset where the damage was met."""
        data, fed = self._in, 0
        got: list[bytes] = []
        try:
            for i in range(0, len(data), 64):
                piece = data[i : i + 64]
                while piece:
                    out = d.decompress(piece, want - sum(map(len, got)) or 1)
                    got.append(out)
                    piece = d.unconsumed_tail
                    if sum(map(len, got)) >= want:
                        break
                fed = i
                if sum(map(len, got)) >= want:
                    break
        except zlib.error:
            pass
        self._salvaged = b"".join(got)[:want]
        return self._read - len(self._in) + fed

    def _fail(self, why: str, kind: str = "decompression", salvaged: int | None = None) -> None:
        consumed = self._read - len(self._in) if salvaged is None else salvaged
        out = self.out + len(self._salvaged)
        self.problem = StreamProblem(
            kind, f"{self.kind} decompression failed at compressed byte {consumed} (decompressed byte "
            f"{out}): {why}", out, consumed)
        self._done = True
        self._raw_eof = True

    def readinto(self, b: Any) -> int:
        want = len(b)
        while not self._done and want:
            data = self._step(want)
            if data:
                n = len(data)
                b[:n] = data
                self.out += n
                return n
        return 0

    def _step(self, want: int) -> bytes:
        d = self._d
        if d.eof:
            self._next_member()
            return b""
        if not self._in and not self._raw_eof:
            self._fill()
            if self._done:
                return b""
        try:
            if self.kind == "gzip":
                saved = d.copy()  # zlib drops a call's output when it raises: replay it finely then
                try:
                    out = d.decompress(self._in, want)
                except zlib.error as exc:
                    self._fail(str(exc), salvaged=self._salvage(saved, want))
                    return self._salvaged
                self._in = d.unused_data if d.eof else d.unconsumed_tail
            elif d.needs_input:
                out = d.decompress(self._in, want)
                self._in = d.unused_data if d.eof else b""
            else:  # output still buffered inside the decompressor: the input read stays in _in
                out = d.decompress(b"", want)
                if d.eof:
                    self._in = d.unused_data + self._in
        except (zlib.error, OSError, EOFError, ValueError, lzma.LZMAError) as exc:
            self._fail(str(exc))
            return b""
        if not out and not d.eof and not self._in and self._raw_eof:
            self._fail("the compressed file ends inside a member (premature end)")
        return bytes(out)

    def _next_member(self) -> None:
        """The current member ended: start the next one, or end here (reporting trailing bytes)."""
        while len(self._in) < 6 and not self._raw_eof and not self._done:
            self._fill()
        if self._done:
            return
        if not self._in:
            self._done = True  # a clean end
            return
        if compression_of(self._in[:6]) == self.kind:
            self._d = self._new()  # another member (gzip -c a >x; gzip -c b >>x) or stream
            return
        start = self._read - len(self._in)
        extra, zeros = len(self._in), not self._in.strip(b"\0")
        while not self._raw_eof and not self._done:  # count the rest without keeping it
            self._in = b""
            self._fill()
            extra += len(self._in)
            zeros = zeros and not self._in.strip(b"\0")
        self._in = b""
        if self._done:
            return
        self._done = True
        if zeros and self.kind == "xz":
            return  # xz stream padding: null bytes are allowed after a stream
        what = "zero bytes" if zeros else f"not another {self.kind} member"
        self.problem = StreamProblem(
            "trailing_data", f"{extra} bytes after the end of the {self.kind} data at compressed byte "
            f"{start} ({what}) were ignored; everything before them was read (decompressed bytes: "
            f"{self.out})", self.out, start)

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


class _ZstdFrames:
    """Follows the zstd frame and block headers of the compressed bytes as they are read.

    zstandard's decompressors end silently when the input stops inside a frame; this walker knows
    whether the input ended on a frame boundary (RFC 8878 section 3.1), so a cut is reported. It
    also ends each `read` at the end of a frame, so that every frame gets its own decompressor
    (read_to_iter reads one frame and drops what it read past it).
    """

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.read_bytes = 0  # compressed bytes handed to the decompressor
        self._pending = b""  # read from the file, past the end of the frame being decompressed
        self._raw_eof = False
        self._skip = 0  # bytes of the current block / frame content still to pass over
        self._hdr = b""  # header bytes gathered so far
        self._need = 4  # header bytes needed in the current state
        self._state = "magic"  # magic | fhd | skip_size | block
        self._checksum = False
        self._frame_ends = False  # the frame ends when _skip reaches 0
        self.frame_done = False  # reads stop until next_frame()
        self.lost = False  # an unknown frame: the decompressor reports it, the walker stops following

    def read(self, n: int = -1) -> bytes:
        if self.frame_done:
            return b""
        if not self._pending and not self._raw_eof:
            self._pending = self._raw.read(RAW_PIECE if n is None or n < 0 else n)
            self._raw_eof = not self._pending
        data = self._pending
        if self.lost:
            self._pending = b""
        else:
            end = self._follow(data)
            data, self._pending = data[:end], data[end:]
        self.read_bytes += len(data)
        return data

    def next_frame(self) -> bool:
        """After a frame ended: is there another one? (Then reads go on.)"""
        if not self._pending and not self._raw_eof:
            self._pending = self._raw.read(RAW_PIECE)
            self._raw_eof = not self._pending
        self.frame_done = False
        return bool(self._pending)

    def at_frame_boundary(self) -> bool:
        return self.lost or (self._state == "magic" and not self._hdr and not self._skip)

    def _follow(self, data: bytes) -> int:
        """Walk `data`; the index where the current frame ends (len(data) when it does not)."""
        i, n = 0, len(data)
        while i < n:
            if self._skip:
                take = min(self._skip, n - i)
                self._skip -= take
                i += take
            else:
                take = min(self._need - len(self._hdr), n - i)
                self._hdr += data[i : i + take]
                i += take
                if len(self._hdr) == self._need:
                    hdr, self._hdr = self._hdr, b""
                    self._advance(hdr)
                    if self.lost:
                        return n
            if self._frame_ends and not self._skip:
                self._frame_ends = False
                self.frame_done = True
                return i
        return n

    def _advance(self, hdr: bytes) -> None:
        state = self._state
        if state == "magic":
            magic = int.from_bytes(hdr, "little")
            if magic == 0xFD2FB528:
                self._state, self._need = "fhd", 1
            elif magic & 0xFFFFFFF0 == 0x184D2A50:  # skippable frame
                self._state, self._need = "skip_size", 4
            else:
                self.lost = True
        elif state == "skip_size":
            self._skip = int.from_bytes(hdr, "little")
            self._state, self._need, self._frame_ends = "magic", 4, True
        elif state == "fhd":
            fhd = hdr[0]
            single = bool(fhd & 0x20)
            self._checksum = bool(fhd & 0x04)
            fcs = (0, 2, 4, 8)[fhd >> 6] or (1 if single else 0)
            self._skip = (0 if single else 1) + (0, 1, 2, 4)[fhd & 3] + fcs
            self._state, self._need = "block", 3
        elif state == "block":
            bh = int.from_bytes(hdr, "little")
            last, btype, size = bh & 1, (bh >> 1) & 3, bh >> 3
            self._skip = 1 if btype == 1 else size
            if last:
                self._skip += 4 if self._checksum else 0
                self._state, self._need, self._frame_ends = "magic", 4, True


class _Zstd(io.RawIOBase):
    """zstd (every frame in turn) through zstandard's bounded read_to_iter, with cuts reported.

    Not stream_reader: given input that stops inside a frame, it also dropped the output it had
    not yet returned (a frame cut after 270,024 decompressable bytes gave 262,144).
    """

    kind = "zstd"

    def __init__(self, raw: Any) -> None:
        import zstandard

        self._raw = raw
        self._frames = _ZstdFrames(raw)
        self._dctx = zstandard.ZstdDecompressor()
        self._chunks = self._frame_chunks()
        self._error: type[BaseException] = zstandard.ZstdError
        self._pending = memoryview(b"")
        self.out = 0
        self.problem: StreamProblem | None = None
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._pending:
            if self._done:
                return 0
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                if self._frames.frame_done and self._frames.next_frame():
                    self._chunks = self._frame_chunks()  # concatenated frames (pzstd, cat a.zst b.zst)
                    continue
                self._done = True
                if not self._frames.at_frame_boundary():
                    self._stop("the compressed file ends inside a frame (premature end)")
                return 0
            except (self._error, OSError, ValueError) as exc:
                self._stop(str(exc))
                return 0
        n = min(len(b), len(self._pending))
        b[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self.out += n
        return n

    def _frame_chunks(self) -> Any:
        return self._dctx.read_to_iter(cast(Any, self._frames), read_size=RAW_PIECE, write_size=RAW_PIECE)

    def _stop(self, why: str) -> None:
        at = self._frames.read_bytes
        self.problem = StreamProblem(
            "decompression", f"zstd decompression failed at compressed byte {at} (decompressed byte "
            f"{self.out}): {why}", self.out, at)
        self._done = True

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()
