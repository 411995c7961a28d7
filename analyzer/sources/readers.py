"""Capture readers: pcap and pcapng (plain, compressed or stdin) -> PacketBatch stream.

Memory is bounded by the chunk size, never by the file size: a file is read in chunks into a
fresh buffer; the compiled walker finds the complete records in it; the incomplete tail is carried
to the next chunk.
"""

from __future__ import annotations

import io
import struct
import sys
from collections.abc import Iterator
from typing import Any, cast

import numpy as np

from analyzer.errors import CaptureError
from analyzer.sources import _walk, compression
from analyzer.sources.batch import SUPPORTED_LINKTYPES, PacketBatch, Problem

CHUNK_BYTES = 1 << 20  # small enough that walking, decoding and flow keying hit the cache
MAX_RECORD = 16 << 20  # a larger record length is corruption, not a packet
BATCH_ROWS = 1 << 16

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000),  # microseconds, little-endian
    b"\xa1\xb2\xc3\xd4": (">", 1000),
    b"\x4d\x3c\xb2\xa1": ("<", 1),  # nanoseconds
    b"\xa1\xb2\x3c\x4d": (">", 1),
}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"

COMPRESSION_MAGICS = compression.MAGICS


def display_path(path: str) -> str:
    """A file name as messages and the `source` column show it.

    A name that is not valid UTF-8 reaches Python with surrogate escapes ('\\udce9'): written to
    stderr or to an Arrow/Parquet column it raised UnicodeEncodeError and ended the whole run. Its
    undecodable bytes are shown as \\xNN escapes instead (the name itself still opens the file).
    """
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return path


class _Peekable(io.RawIOBase):
    """A non-seekable stream (stdin, a pipe, a FIFO) with some bytes already read put back in front."""

    def __init__(self, head: bytes, rest: Any) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, b):
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(b))
        n = len(data)
        b[:n] = data
        return n

    def close(self) -> None:
        try:
            if self._rest is not _stdin_buffer():
                self._rest.close()
        finally:
            super().close()


def _stdin_buffer() -> Any:
    return getattr(sys.stdin, "buffer", None)


class InputPosition:
    """How far the reading of one capture file has got, in bytes of the file itself (compressed bytes
    for a compressed capture): what a progress display measures against the file's size. Polled by
    whoever wants it, never pushed, so reading pays nothing for it. None when not known (standard
    input, a pipe or FIFO, a file not yet opened or already closed)."""

    __slots__ = ("_file",)

    def __init__(self) -> None:
        self._file: Any = None

    def bytes_read(self) -> int | None:
        f = self._file
        if f is None:
            return None
        try:
            return int(f.tell())
        except (OSError, ValueError):  # not seekable, or closed
            return None


def open_capture_stream(path: str, position: InputPosition | None = None) -> tuple[Any, str | None]:
    """Open `path` (or '-' for stdin) and undo any compression found by content; `position`, when
    given, follows the file's own offset (see InputPosition).

    Nothing here seeks: `<(cat x.pcap)`, a named FIFO or a pipe on stdin are read like files (the
    sniffed bytes are put back in front of the stream).
    """
    if path == "-":
        raw: Any = _stdin_buffer()
        if raw is None or getattr(raw, "closed", False):
            raise CaptureError("<stdin>", None, "standard input is closed")
    else:
        try:
            raw = open(path, "rb")  # noqa: SIM115 - the reader owns and closes it
        except IsADirectoryError:
            raise CaptureError(display_path(path), None, "is a directory") from None
        except OSError as exc:
            raise CaptureError(display_path(path), None, f"cannot open: {exc.strerror or exc}") from None
    try:
        head = raw.read(6)
    except OSError as exc:
        raw.close()
        raise CaptureError("<stdin>" if path == "-" else display_path(path), 0,
                           f"cannot read: {exc.strerror or exc}") from None
    if path != "-" and raw.seekable():
        raw.seek(0)
        if position is not None:
            position._file = raw
    else:
        raw = io.BufferedReader(_Peekable(head, raw))
    kind = compression.compression_of(head)
    if kind is None:
        return raw, None
    return compression.open_decompressed(raw, kind), kind


class _ChunkReader:
    """Fills numpy buffers from a stream, carrying an incomplete tail forward."""

    def __init__(self, stream: Any, path: str, chunk: int = CHUNK_BYTES) -> None:
        self.stream = stream
        self.path = path
        self.chunk = chunk
        self.base = 0  # stream offset of buf[0]
        self.buf: Any = np.zeros(0, np.uint8)  # numpy's stubs don't see it as a Buffer
        self.end = 0
        self.eof = False
        self._spare: Any = None
        self._read_error: compression.StreamProblem | None = None

    def refill(self, keep_from: int, min_size: int = 0) -> None:
        """Start a new buffer holding buf[keep_from:end] plus as much new data as fits."""
        tail = self.end - keep_from
        size = max(self.chunk, tail + min_size, tail * 2)
        # Two buffers alternate: the previous batch may still be referenced while this one fills,
        # and reusing memory avoids page faults (fresh large allocations are new mmaps).
        spare = self._spare
        self._spare = None
        # Reuse the spare only when no batch still holds it: a consumer that keeps batches
        # (`list(read_capture(p))`) would otherwise see its packet bytes overwritten. Refs here:
        # the local name and getrefcount's argument.
        reusable = spare is not None and spare.shape[0] >= size and sys.getrefcount(spare) <= 2
        new = spare if reusable else np.empty(size, np.uint8)
        del spare
        self._spare = self.buf if self.buf.shape[0] else None
        if tail:
            new[:tail] = self.buf[keep_from : self.end]
        self.base += keep_from
        self.buf = new
        self.end = tail
        view = memoryview(cast(Any, new))
        while self.end < size and not self.eof:
            try:
                # bounded reads: the decompressing streams never raise on damage (they end and
                # say why, see stream_problem); a plain file can still fail to read (EIO)
                got = self.stream.readinto(view[self.end : min(size, self.end + READ_PIECE)])
            except OSError as exc:
                self.eof = True
                at = self.base + self.end
                self._read_error = compression.StreamProblem(
                    "decompression", f"reading failed at byte {at}: {exc.strerror or exc}", at, at)
                break
            if not got:
                self.eof = True
                break
            self.end += got

    def stream_problem(self) -> compression.StreamProblem | None:
        """Why the stream ended early or what it ignored at its end (known once eof is reached)."""
        if self._read_error is not None:
            return self._read_error
        return getattr(self.stream, "problem", None) if self.eof else None


READ_PIECE = 1 << 16  # bytes asked of the stream at once


_STOPS_READING = frozenset({"corrupt_record", "truncated_record", "decompression"})
_KEPT = "; reading stopped there, the packets before it are kept"
_NOTHING_KEPT = "; reading stopped there, before any packet"


def _problem(path: str, offset: int | None, kind: str, detail: str) -> Problem:
    if kind in _STOPS_READING:
        detail += _KEPT
    return Problem(source=path, offset=offset, kind=kind, detail=detail)


def strict_detail(problem: Problem) -> str:
    """The detail of a problem that ends a strict run. Without strict the packets before the
    problem are kept (the detail says so); with it nothing is kept: the run stops, nothing is written."""
    return problem.detail.removesuffix(_KEPT) + "; strict mode: the run stops here and nothing is written"


def _alloc_rows(n: int) -> tuple[np.ndarray, ...]:
    return (
        np.empty(n, np.int64), np.empty(n, np.int32), np.empty(n, np.int32),
        np.empty(n, np.uint32), np.empty(n, np.uint32), np.empty(n, np.uint32),
    )  # fmt: skip


def read_pcap(reader: _ChunkReader, path: str, header: bytes) -> Iterator[PacketBatch]:
    order, ts_mult = PCAP_MAGICS[header[:4]]
    _, _, _, _, snaplen, linktype = struct.unpack(order + "HHiIII", header[4:24])
    linktype = _linktype16(linktype & 0xFFFF)  # upper bits may carry FCS info
    swap = order == ">"
    max_caplen = max(snaplen, 262144)
    max_caplen = min(max_caplen, MAX_RECORD)
    pos = 24
    first_index = 0
    aux = np.zeros(2, np.int64)
    pending: list[Problem] = []  # said with the first batch
    if linktype not in SUPPORTED_LINKTYPES:
        pending.append(_unsupported_linktype(path, 20, linktype))
    while True:
        off, cap, wire, sec, frac, _ = _alloc_rows(BATCH_ROWS)
        n, pos, status = _walk.walk_pcap(reader.buf, pos, reader.end, swap, max_caplen,
                                         off, cap, wire, sec, frac, aux)
        problems, pending = pending, []
        stop = False
        if status == _walk.CORRUPT:
            problems.append(_problem(path, reader.base + pos, "corrupt_record",
                                     f"record length {aux[1]} is impossible (snaplen {snaplen})"))
            stop = True
        elif status == _walk.NEED_MORE and reader.eof:
            left = reader.end - pos
            if left:
                problems.append(_problem(path, reader.base + pos, "truncated_record",
                                         f"file ends {left} bytes into a packet record"))
            stop = True
        if n:
            ts = sec[:n].astype(np.int64) * 1_000_000_000 + frac[:n].astype(np.int64) * ts_mult
            yield PacketBatch(path, reader.buf, off[:n], cap[:n], wire[:n], ts,
                              np.full(n, linktype, np.int16), first_index, problems)
            problems = []
            first_index += n
        if problems:
            yield PacketBatch(path, np.zeros(0, np.uint8), off[:0], cap[:0], wire[:0],
                              np.zeros(0, np.int64), np.zeros(0, np.int16), first_index, problems)
        if stop:
            return
        if status == _walk.NEED_MORE:
            need = 0
            if pos + 16 <= reader.end:
                need = 16 + int(struct.unpack_from(order + "I", reader.buf, pos + 8)[0])
            reader.refill(pos, need)
            pos = 0


def _linktype16(linktype: int) -> int:
    """A link type as stored in PacketBatch.linktype (int16). No link type is >= 0x8000: such a value
    (damage) used to raise OverflowError from numpy; it becomes -1, which decode reports as an
    unsupported link type."""
    return linktype if linktype < 0x8000 else -1


def _problem_batch(path: str, offset: int | None, kind: str, detail: str) -> PacketBatch:
    batch = PacketBatch.empty(path)
    batch.problems.append(_problem(path, offset, kind, detail))
    return batch


def _tsresol_to_ns(tsresol: int) -> tuple[int, int]:
    """(multiplier, divisor) turning a raw pcapng timestamp into nanoseconds."""
    exp = tsresol & 0x7F
    if tsresol & 0x80:
        return 1_000_000_000, 1 << exp
    if exp <= 9:
        return 10 ** (9 - exp), 1
    return 1, 10 ** (exp - 9)


I64_MIN, I64_MAX, U64_MAX = -(1 << 63), (1 << 63) - 1, (1 << 64) - 1


def _ticks_to_ns(r: np.ndarray, tsresol: int, tsoffset: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Raw 64-bit pcapng timestamps (uint64) -> (int64 ns since the epoch, exact; mask of overflow
    or None when every time fits).

    ns(r) = r * mult // div + tsoffset s is monotonic in r, so the ticks whose time fits in int64
    are one range [lo, hi], found with Python integers. A hostile if_tsresol (2^-64, 10^-127) or
    if_tsoffset used to raise OverflowError, then wrapped to 1970; the times that do not fit are
    now flagged (the caller reports them and gives them the previous packet's time).
    """
    mult, div = _tsresol_to_ns(tsresol)
    off_ns = tsoffset * 1_000_000_000
    hi = min(((I64_MAX - off_ns + 1) * div - 1) // mult, U64_MAX)
    low = I64_MIN - off_ns
    lo = 0 if low <= 0 else -(-(low * div) // mult)
    hi_plain = ((I64_MAX + 1) * div - 1) // mult  # the largest r whose time before the offset fits
    if lo > hi or not len(r):
        return np.zeros(len(r), np.int64), (np.ones(len(r), bool) if len(r) else None)
    bad: np.ndarray | None = None
    rc = r
    if int(r.max()) > hi or (lo > 0 and int(r.min()) < lo):  # rare: hostile options or SPB markers
        bad = (r > np.uint64(hi)) | (r < np.uint64(min(lo, U64_MAX)))
        rc = np.clip(r, np.uint64(min(lo, U64_MAX)), np.uint64(hi))
    if int(rc.max()) > hi_plain or not I64_MIN <= off_ns <= I64_MAX:
        # the offset brings back into range a time that does not fit alone: exact Python integers
        return np.array([int(x) * mult // div + off_ns for x in rc.tolist()], np.int64), bad
    if div == 1:
        val = rc.astype(np.int64) * mult
    elif mult == 1 and div < (1 << 64):
        val = (rc // np.uint64(div)).astype(np.int64)
    elif div <= (1 << 34):  # binary fractions: fr * 10^9 < 2^64, stays exact in uint64
        secs = rc // np.uint64(div)
        fr = rc % np.uint64(div)
        frac_ns = (fr * np.uint64(mult) // np.uint64(div)).astype(np.int64)
        val = secs.astype(np.int64) * 1_000_000_000 + frac_ns
    else:  # very fine resolutions: exact Python integers (rare)
        val = np.array([int(x) * mult // div for x in rc.tolist()], np.int64)
    if off_ns:
        val = val + np.int64(off_ns)
    return val, bad


def _parse_idb(body: bytes, order: str) -> tuple[int, int, int, int]:
    """Interface Description Block body -> (linktype, snaplen, tsresol, tsoffset_seconds)."""
    linktype, _, snaplen = struct.unpack_from(order + "HHI", body, 0)
    tsresol, tsoffset = 6, 0
    p = 8
    while p + 4 <= len(body):
        code, length = struct.unpack_from(order + "HH", body, p)
        p += 4
        if code == 0:
            break
        value = body[p : p + length]
        if len(value) < length:
            break  # an option running past its block (damage) used to raise IndexError/struct.error
        if code == 9 and length >= 1:
            tsresol = value[0]
        elif code == 14 and length == 8:
            tsoffset = struct.unpack(order + "q", value)[0]
        p += (length + 3) & ~3
    return linktype, snaplen, tsresol, tsoffset


_NO_IFACE = np.uint32(0xFFFFFFFF)  # global interface id of a packet naming an undescribed interface


def _unsupported_linktype(path: str, offset: int, linktype: int) -> Problem:
    shown = "beyond 0x7fff" if linktype < 0 else str(linktype)
    return _problem(path, offset, "unsupported_linktype",
                    f"link type {shown} is not supported: its packets are counted, not decoded "
                    "(no flows come from them)")


class _PcapngRows:
    """The packet rows of one batch being gathered across control blocks.

    An Interface Description Block used to end the batch: a file with an IDB before every packet
    made one batch per packet, and each batch looped over every interface seen so far (quadratic:
    20,000 packets took more than 300 s). Rows now accumulate across IDBs, interface ids are made
    global (ids count from each section's first interface), and a batch looks only at the
    interfaces its packets name.
    """

    def __init__(self) -> None:
        self.arrays = _alloc_rows(BATCH_ROWS)
        self.n = 0
        self.problems: list[Problem] = []
        self.secrets: list[bytes] = []  # Decryption Secrets Blocks' key log text

    def views(self) -> tuple[np.ndarray, ...]:
        return tuple(a[self.n :] for a in self.arrays)

    def take(self, k: int, path: str, base: int, section_base: int, described: int) -> None:
        """Account for k rows just written by the walker; make their interface ids global."""
        off, ifid = self.arrays[0], self.arrays[5]
        ids = ifid[self.n : self.n + k]
        bad = ids >= described if int(ids.max()) >= described else None
        if bad is not None:
            # the offset (of the first such packet's data) lets the user find it, as for other problems
            first = int(np.flatnonzero(bad)[0])
            self.problems.append(_problem(
                path, base + int(off[self.n + first]), "unknown_interface",
                f"{int(bad.sum())} packets name an interface that was not described "
                f"(first: interface {int(ids[first])})"))
        if section_base:
            ids += np.uint32(section_base)
        if bad is not None:
            ids[bad] = _NO_IFACE
        self.n += k


_DSB = 10  # Decryption Secrets Block (pcapng draft, section 4.7)
_TLS_KEY_LOG = 0x544C534B  # "TLSK": NSS key log text


def _decryption_secrets(body: bytes, order: str) -> tuple[bytes | None, str | None]:
    """(NSS key log text or None, problem or None) of a Decryption Secrets Block's body: secrets
    type (u32), secrets length (u32), the secrets, padding, options. Other secrets types (WireGuard,
    ZigBee, ...) are left alone; the problem never quotes the secrets."""
    if len(body) < 8:
        return None, "decryption secrets block too short"
    stype, slen = struct.unpack_from(order + "II", body, 0)
    if slen > len(body) - 8:
        return None, f"decryption secrets block: secrets length {slen} exceeds its block"
    if stype != _TLS_KEY_LOG:
        return None, None
    return body[8 : 8 + slen], None


def read_pcapng(reader: _ChunkReader, path: str) -> Iterator[PacketBatch]:
    pos = 0
    first_index = 0
    interfaces: list[tuple[int, int, int, int]] = []  # every section's, in order: global ids
    section_base = 0  # global id of the current section's interface 0
    reported_lt: set[int] = set()
    order = "<"
    swap = False
    aux = np.zeros(2, np.int64)
    sections = 0
    last_ts = [0]
    rows = _PcapngRows()

    def flush() -> Iterator[PacketBatch]:
        nonlocal rows, first_index
        if rows.n or rows.problems or rows.secrets:
            n = rows.n
            off, cap, wire, tshi, tslo, gid = (a[:n] for a in rows.arrays)
            batch = _pcapng_batch(path, reader.buf, off, cap, wire, tshi, tslo, gid, interfaces,
                                  first_index, reader.base, last_ts)
            batch.problems[:0] = rows.problems
            batch.secrets = rows.secrets
            first_index += n  # packets dropped for naming no interface keep their numbers
            rows = _PcapngRows()
            yield batch

    while True:
        if rows.n == BATCH_ROWS:
            yield from flush()
        # control blocks (SHB, IDB) are parsed here, packet blocks by the compiled walker
        if reader.end - pos < 12:
            yield from flush()  # the refill replaces the buffer the rows point into
            if reader.eof:
                if reader.end - pos:
                    yield _problem_batch(path, reader.base + pos, "truncated_record",
                                         f"file ends {reader.end - pos} bytes into a block")
                return
            reader.refill(pos)
            pos = 0
            continue
        btype_le = struct.unpack_from("<I", reader.buf, pos)[0]
        if btype_le == 0x0A0D0D0A:
            if reader.end - pos < 28:
                yield from flush()
                if reader.eof:
                    yield _problem_batch(path, reader.base + pos, "truncated_record",
                                         "file ends inside a section header")
                    return
                reader.refill(pos)
                pos = 0
                continue
            bom = bytes(reader.buf[pos + 8 : pos + 12])
            if bom == b"\x4d\x3c\x2b\x1a":
                order, swap = "<", False
            elif bom == b"\x1a\x2b\x3c\x4d":
                order, swap = ">", True
            else:
                msg = f"bad pcapng byte-order magic {bom.hex()}"
                yield from flush()
                if sections == 0:
                    raise CaptureError(path, reader.base + pos + 8, msg)
                yield _problem_batch(path, reader.base + pos + 8, "corrupt_record", msg)
                return
            sections += 1
            section_base = len(interfaces)  # interface ids are per section
        btype = btype_le if btype_le == 0x0A0D0D0A else struct.unpack_from(order + "I", reader.buf, pos)[0]
        if btype == 0x0A0D0D0A or btype == 1 or btype == _DSB:
            blen = struct.unpack_from(order + "I", reader.buf, pos + 4)[0]
            if blen < 12 or blen % 4 or blen > MAX_RECORD:
                yield from flush()
                yield _problem_batch(path, reader.base + pos, "corrupt_record",
                                     f"impossible block length {blen}")
                return
            if pos + blen > reader.end:
                yield from flush()
                if reader.eof:
                    yield _problem_batch(path, reader.base + pos, "truncated_record",
                                         f"file ends inside a {blen}-byte block")
                    return
                reader.refill(pos, blen)
                pos = 0
                continue
            if btype == _DSB:
                secrets, problem = _decryption_secrets(bytes(reader.buf[pos + 8 : pos + blen - 4]), order)
                if secrets is not None:
                    rows.secrets.append(secrets)
                if problem is not None:
                    rows.problems.append(_problem(path, reader.base + pos, "bad_secrets_block", problem))
            elif btype_le != 0x0A0D0D0A:
                body = bytes(reader.buf[pos + 8 : pos + blen - 4])
                if len(body) < 8:
                    yield from flush()
                    yield _problem_batch(path, reader.base + pos, "corrupt_record",
                                         "interface description block too short")
                    return
                lt, snap, tsresol, tsoffset = _parse_idb(body, order)
                lt = _linktype16(lt)
                interfaces.append((lt, snap, tsresol, tsoffset))
                if lt not in SUPPORTED_LINKTYPES and lt not in reported_lt:
                    reported_lt.add(lt)
                    rows.problems.append(_unsupported_linktype(path, reader.base + pos, lt))
            pos += blen
            continue
        off, cap, wire, tshi, tslo, ifid = rows.views()
        k, pos, status = _walk.walk_pcapng(reader.buf, pos, reader.end, swap, MAX_RECORD,
                                           off, cap, wire, tshi, tslo, ifid, aux)
        if k:
            rows.take(k, path, reader.base, section_base, len(interfaces) - section_base)
        if status == _walk.CORRUPT:
            what = {1: f"packet length {aux[1]} exceeds its block",
                    2: f"impossible block length {aux[1]}",
                    3: f"block trailer does not repeat the length {aux[1]}"}[int(aux[0])]
            yield from flush()
            yield _problem_batch(path, reader.base + pos, "corrupt_record", what)
            return
        if status == _walk.NEED_MORE:
            yield from flush()
            if reader.eof:
                if reader.end - pos:
                    yield _problem_batch(path, reader.base + pos, "truncated_record",
                                         f"file ends {reader.end - pos} bytes into a block")
                return
            need = 0
            if pos + 8 <= reader.end:
                need = int(struct.unpack_from(order + "I", reader.buf, pos + 4)[0])
            reader.refill(pos, min(need, MAX_RECORD))
            pos = 0


def _pcapng_batch(path, buf, off, cap, wire, tshi, tslo, gid, interfaces, first_index,
                  base=0, last_ts=None):
    """One batch from walked rows; `gid` are global interface ids (_NO_IFACE: undescribed, dropped)."""
    last_ts = last_ts if last_ts is not None else [0]  # time of the previous packet, carried across batches
    problems: list[Problem] = []
    raw = (tshi.astype(np.uint64) << np.uint64(32)) | tslo.astype(np.uint64)
    ids = gid.astype(np.int64)
    if len(ids) and int(ids.max()) >= len(interfaces):
        keep = ids < len(interfaces)
        off, cap, wire, raw, ids = off[keep], cap[keep], wire[keep], raw[keep], ids[keep]
    n = len(off)
    linktype = np.empty(n, np.int16)
    ts = np.empty(n, np.int64)
    nots = raw == np.uint64(0xFFFFFFFFFFFFFFFF)
    # only the interfaces this batch names (one, mostly): linear in packets, whatever the IDB count
    present = [] if not n else [int(ids[0])] if ids.min() == ids.max() else np.unique(ids).tolist()
    for i in present:
        lt, _snap, tsresol, tsoffset = interfaces[i]
        m: Any = ids == i if len(present) > 1 else slice(None)
        linktype[m] = lt
        ts[m], over = _ticks_to_ns(raw[m], tsresol, tsoffset)
        if over is not None:
            over &= ~nots[m]  # a Simple Packet Block's "no time" marker is not an overflow
        if over is not None and over.any():
            where = np.flatnonzero(m)[over] if len(present) > 1 else np.flatnonzero(over)
            nots[where] = True
            problems.append(_problem(
                path, base + int(off[where[0]]), "timestamp_overflow",
                f"{len(where)} packet times do not fit in 64-bit nanoseconds since 1970 (if_tsresol "
                f"{tsresol:#x}, if_tsoffset {tsoffset} s): they take the time of the packet before them"))
    if nots.any():
        # Simple Packet Blocks carry no time: they take the time of the packet before them (0 when
        # none). They used to get 0, so a flow mixing SPBs and EPBs lasted from 1970 and every
        # idle timeout split it.
        last = np.where(~nots, np.arange(len(ts)), -1)
        np.maximum.accumulate(last, out=last)
        ts = np.where(last >= 0, ts[np.maximum(last, 0)], last_ts[0])
    if len(ts):
        last_ts[0] = int(ts[-1])
    return PacketBatch(path, buf, off, cap, wire, ts, linktype, first_index, problems)


def read_capture(path: str, chunk: int = CHUNK_BYTES, *,
                 position: InputPosition | None = None) -> Iterator[PacketBatch]:
    """Yield PacketBatches from one capture file ('-' = stdin). Fatal problems raise CaptureError.
    `position` (optional) follows how far into the file the reading is (InputPosition)."""
    name = "<stdin>" if path == "-" else display_path(path)  # errors, warnings, the `source` column
    stream, _compression = open_capture_stream(path, position)
    try:
        reader = _ChunkReader(stream, name, chunk)
        reader.refill(0)
        if reader.end == 0:
            gone = reader.stream_problem()
            if gone is not None:
                raise CaptureError(name, gone.decompressed_offset, gone.detail)
            raise CaptureError(name, 0, "empty file")
        head = bytes(reader.buf[: min(24, reader.end)])  # never past what was read (uninitialised)
        if head[:4] in PCAP_MAGICS:
            if reader.end < 24:
                raise CaptureError(name, reader.end, "file ends inside the pcap file header")
            batches = read_pcap(reader, name, head)
        elif head[:4] == PCAPNG_SHB:
            batches = read_pcapng(reader, name)
        elif len(head) < 4:
            raise CaptureError(name, 0, f"not a pcap or pcapng capture (only {len(head)} bytes: "
                                        f"0x{head.hex()})")
        else:
            raise CaptureError(name, 0, f"not a pcap or pcapng capture (starts with 0x{head[:4].hex()})")
        packets = 0
        for batch in batches:
            # Damage before the first packet leaves nothing read: that is a capture that cannot be
            # read (CaptureError, exit code 2), not a partial one with zero packets and exit code 0.
            if not packets and not len(batch):
                for p in batch.problems:
                    if p.kind in _STOPPING_PROBLEMS:
                        gone = reader.stream_problem()  # a decompression failure is the real cause
                        if gone is not None and gone.kind == "decompression":
                            raise CaptureError(name, gone.decompressed_offset, gone.detail)
                        # nothing was kept: the detail must not say the packets before it were
                        raise CaptureError(name, p.offset, p.detail.removesuffix(_KEPT) + _NOTHING_KEPT)
            packets += len(batch)
            yield batch
        gone = reader.stream_problem()
        if gone is not None:
            if not packets and gone.kind == "decompression":
                raise CaptureError(name, gone.decompressed_offset, gone.detail)
            yield _problem_batch(name, gone.decompressed_offset, gone.kind, gone.detail)
    finally:
        stream.close()


_STOPPING_PROBLEMS = frozenset({"corrupt_record", "truncated_record", "decompression"})


# kept importable from here: the path scan moved to analyzer.sources.scan
from analyzer.sources.scan import expand_paths, looks_like_capture, scan_paths  # noqa: E402

__all__ = ["InputPosition", "display_path", "expand_paths", "looks_like_capture", "open_capture_stream", "read_capture",
           "scan_paths"]
