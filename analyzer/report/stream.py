"""Frames written chunk by chunk: memory bounded by a chunk, not by the number of rows.

`analyze(paths, sinks={"flows": sink})` hands each chunk of a frame to `sink.write(chunk)` instead of
keeping it (the protocol is `analyzer.pipeline.FrameSink`); whoever made the sink closes it after
the analysis, or aborts it on error (`with` does both). Two sinks:

- `FrameWriter` appends chunks, in arrival order, to a CSV / JSON Lines / Parquet file or stdout.
- `SortedSink` sorts everything it receives by key columns with bounded memory (an external merge
  sort: sorted runs spilled to Arrow IPC files, merged `fan_in` at a time reading one record batch
  per run) and hands the rows in order to another sink at close. `.flows` chunks arrive in the order
  flows ended; the frame's order is (ts_start, uid).

What is written equals `write_frame(whole_frame, fmt, out)`: the same CSV bytes (formula cells
neutralized), the same JSON lines, and Parquet that reads back to an equal frame. It goes to a
staging file that replaces `out` (or is copied to stdout) only once everything is written, so an
error never leaves a partial output; spill files are removed on success and on error.

The sizes below are read when a sink is made, so tests can shrink them to force many runs and
several merge passes on tiny captures.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Protocol, Self

import numpy as np
import pyarrow as pa

from analyzer.errors import UsageError
from analyzer.schema import arrow_schema

if TYPE_CHECKING:
    import pandas as pd

STREAM_FORMATS = ("csv", "jsonl", "parquet")
RUN_ROWS = 16384  # rows sorted in memory and spilled as one run (the pipeline folds 16384 flows at a time)
BATCH_ROWS = 2048  # rows per record batch in the spill files: the merge holds one batch per run
FAN_IN = 32  # runs merged at once; more runs are first merged into longer ones, FAN_IN at a time
# Arrow bytes of an input that comes in order held in memory before they are spilled (SortedSink.ordered):
# such rows need no sort, and a Dask run's partitions are already in memory (the spool's mapped files)
HOLD_BYTES = 256 << 20
ROW_GROUP_ROWS = 16384  # Parquet rows gathered before they are written as a row group

_INT64_MIN = np.iinfo(np.int64).min


class TableSink(Protocol):
    """What a SortedSink hands its sorted rows to (FrameWriter is one)."""

    arrow_schema: pa.Schema

    def write_table(self, table: pa.Table) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


class _Sink:
    """`with sink:` closes it on success and aborts it (removing every file it made) on error."""

    arrow_schema: pa.Schema

    def write(self, chunk: pd.DataFrame) -> None:
        """Take one chunk of the frame (the declared schema's columns and dtypes)."""
        self.write_table(pa.Table.from_pandas(chunk, schema=self.arrow_schema, preserve_index=False))

    def write_table(self, table: pa.Table) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class _Staged:
    """A file that becomes `out` on commit (or is copied to stdout when `out` is None, or into `out`
    when that is not a regular file: /dev/stdout, a FIFO), and is removed on abort."""

    def __init__(self, out: str | None, binary: bool) -> None:
        self.target: str | None
        if out is None or (os.path.exists(out) and not os.path.isfile(out)):
            self.copy, self.target = True, out
        else:  # a symlink to a file: the file is replaced, the link kept
            self.copy, self.target = False, os.path.realpath(out)
        directory = tempfile.gettempdir() if self.copy else os.path.dirname(self.target or ".")
        name = os.path.basename(self.target or "stdout")
        while True:  # O_EXCL with mode 0o666: the umask applies, as for a file open() creates
            self.path = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.part")
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                break
            except FileExistsError:
                continue
            except OSError as exc:  # before the analysis, not after it: a missing directory, no permission
                raise UsageError(f"cannot write {out or 'to standard output'}: {exc.strerror} ({directory})") from exc
        if not self.copy and self.target is not None and os.path.isfile(self.target):
            shutil.copymode(self.target, self.path)  # replacing a file keeps its permissions
        self.fh: IO[Any] = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")

    def commit(self) -> None:
        self.fh.close()
        try:
            if self.target is None:
                with open(self.path, encoding="utf-8", newline="") as src:
                    shutil.copyfileobj(src, sys.stdout, 1 << 20)
            elif self.copy:
                with open(self.path, "rb") as src, open(self.target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            else:
                os.replace(self.path, self.target)
        finally:
            self.abort()

    def abort(self) -> None:
        self.fh.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


class _Spill:
    """A temporary directory of Arrow IPC files (runs), removed with everything in it."""

    def __init__(self, spill_dir: str | None) -> None:
        self.dir = tempfile.mkdtemp(prefix="intransit-spill-", dir=spill_dir)
        self.count = 0

    def new_run(self, schema: pa.Schema, batch_rows: int) -> _RunWriter:
        self.count += 1
        return _RunWriter(os.path.join(self.dir, f"run{self.count:06d}.arrow"), schema, batch_rows)

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class _RunWriter:
    def __init__(self, path: str, schema: pa.Schema, batch_rows: int) -> None:
        self.path, self.batch_rows = path, batch_rows
        self._file = pa.OSFile(path, "wb")
        self._writer = pa.ipc.new_file(self._file, schema)

    def write_table(self, table: pa.Table) -> None:
        self._writer.write_table(table, max_chunksize=self.batch_rows)

    def close(self) -> str:
        self._writer.close()
        self._file.close()
        return self.path


def _batches(path: str) -> Any:
    """The record batches of a run, one read at a time."""
    with pa.OSFile(path) as f:
        reader = pa.ipc.open_file(f)
        for i in range(reader.num_record_batches):
            yield reader.get_batch(i)


class FrameWriter(_Sink):
    """Appends chunks, in the order they come, to `out` (None: stdout) as csv, jsonl or parquet.

    CSV is written in two passes: pandas formats a datetime column at the finest resolution found in
    the whole column (all cells get 9 fraction digits if one value has nanoseconds), so the chunks
    are spooled to an Arrow file and formatted at close, once that resolution is known.
    """

    def __init__(self, fmt: str, out: str | None, frame_schema: dict[str, str], *, batch_rows: int | None = None,
                 row_group_rows: int | None = None, spill_dir: str | None = None) -> None:
        if fmt not in STREAM_FORMATS:
            raise ValueError(f"format {fmt!r} cannot be streamed; choose one of {', '.join(STREAM_FORMATS)}")
        if fmt == "parquet" and out is None:
            raise ValueError("parquet needs --out FILE (it is a binary format)")
        self.fmt = fmt
        self.arrow_schema = arrow_schema(frame_schema)
        self.batch_rows = batch_rows or BATCH_ROWS
        self.row_group_rows = row_group_rows or ROW_GROUP_ROWS
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        # per datetime column: (resolution class, a value of that class) over every row written
        self._finest = {f.name: (-1, 0) for f in self.arrow_schema if pa.types.is_timestamp(f.type)}
        self._parquet: Any = None
        self._staged = _Staged(out, binary=fmt == "parquet")
        self._spill = self._spool = None
        try:
            if fmt == "csv":
                self._spill = _Spill(spill_dir)
                self._spool = self._spill.new_run(self.arrow_schema, self.batch_rows)
            elif fmt == "parquet":
                self._parquet = _parquet_writer(self._staged.fh, self.arrow_schema)
        except BaseException:
            self.abort()
            raise

    def write_table(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        if self._spool is not None:
            self._spool.write_table(table)
            for name, best in self._finest.items():
                self._finest[name] = max(best, _finest_resolution(table.column(name)))
        elif self._parquet is not None:
            self._pending.append(table)
            self._pending_rows += table.num_rows
            if self._pending_rows >= self.row_group_rows:
                self._flush_row_group()
        else:
            from analyzer._pandas import pd  # noqa: F401  (pandas formats JSON lines; pyarrow must know it)

            self._staged.fh.write(_jsonl(table.to_pandas()))

    def flush(self) -> None:
        """Write the rows gathered so far now (parquet: as a row group of their own) instead of at the
        next ROW_GROUP_ROWS or at close; the other formats write as they go."""
        if self._parquet is not None:
            self._flush_row_group()

    def _flush_row_group(self) -> None:
        if self._pending:
            self._parquet.write_table(pa.concat_tables(self._pending))  # one row group (< 1Mi rows)
            self._pending, self._pending_rows = [], 0

    def close(self) -> None:
        try:
            if self._parquet is not None:
                self._flush_row_group()
                self._parquet.close()
            elif self._spool is not None:
                self._write_csv(self._spool.close())
            self._staged.commit()
        except BaseException:
            self.abort()
            raise
        if self._spill is not None:
            self._spill.remove()

    def _write_csv(self, spool: str) -> None:
        from analyzer._pandas import pd  # noqa: F401  (pandas formats the CSV; pyarrow must know it)
        from analyzer.report.export import csv_safe

        fh = self._staged.fh
        fh.write(self.arrow_schema.empty_table().to_pandas().to_csv(index=False))  # the header line
        # One extra row carrying each datetime column's finest-resolution value makes pandas format every
        # chunk as it formats the whole column; that row's line (the last) is then dropped.
        witness = pa.Table.from_pylist([{name: value if cls >= 0 else None for name, (cls, value) in
                                         self._finest.items()}], schema=self.arrow_schema)
        for batch in _batches(spool):
            table = pa.concat_tables([pa.Table.from_batches([batch]), witness])
            text = csv_safe(table.to_pandas()).to_csv(index=False, header=False)
            fh.write(text[: text.rindex("\n", 0, len(text) - 1) + 1])

    def abort(self) -> None:
        try:
            if self._parquet is not None:
                self._parquet.close()
        finally:
            self._staged.abort()
            if self._spill is not None:
                self._spill.remove()


# What pyarrow.parquet.ParquetWriter gives pyarrow's own writer by default (pyarrow 14-26)
_PARQUET_DEFAULTS: dict[str, Any] = {
    "version": "2.6", "compression": "snappy", "use_dictionary": True, "write_statistics": True,
    "writer_engine_version": "V2", "data_page_version": "1.0", "use_deprecated_int96_timestamps": False,
    "use_compliant_nested_type": True, "store_schema": True,
}


def _parquet_writer(fh: IO[Any], schema: pa.Schema) -> Any:
    """A Parquet writer on an open binary file: pyarrow's own (`pyarrow._parquet.ParquetWriter`) with
    the arguments `pyarrow.parquet.ParquetWriter` gives it by default, so the file is byte for byte
    the public writer's (tests/report/test_stream_take.py checks), without importing `pyarrow.parquet`:
    its import pulls in `pyarrow.fs` and the cloud filesystems (callgrind: ~46M instructions, over 1%
    of a 200k-packet run) for a file that is already open. A pyarrow whose private writer is missing
    or takes other arguments gets the public writer."""
    try:
        from pyarrow import _parquet

        return _parquet.ParquetWriter(fh, schema, **_PARQUET_DEFAULTS)
    except (ImportError, TypeError, ValueError):
        import pyarrow.parquet as pq

        return pq.ParquetWriter(fh, schema)


def _jsonl(df: pd.DataFrame) -> str:
    from analyzer.report.export import jsonl_text

    return jsonl_text(df.to_json(orient="records", lines=True, date_format="iso", date_unit="us")) if len(df) else ""


def _finest_resolution(column: pa.ChunkedArray) -> tuple[int, int]:
    """(class, value): the finest resolution among the values (4 ns, 3 us, 2 ms, 1 s, 0 whole days), -1 none."""
    import pyarrow.compute  # noqa: F401  (cast and drop_null need it; the CSV path imports pandas anyway)

    values = column.cast(pa.int64()).drop_null().to_numpy()
    if not len(values):
        return (-1, 0)
    classes = sum((values % unit != 0).astype(np.int8) for unit in (86_400 * 10**9, 10**9, 10**6, 10**3))
    i = int(np.argmax(classes))
    return (int(classes[i]), int(values[i]))


class _Null:
    """A null key: before every value, equal only to itself (np.lexsort and the merge's tuples compare it)."""

    __slots__ = ()

    def __lt__(self, other: object) -> bool:
        return other is not self

    def __le__(self, other: object) -> bool:
        return True

    def __gt__(self, other: object) -> bool:
        return False

    def __ge__(self, other: object) -> bool:
        return other is self


_NULL: Any = _Null()  # Any: numpy's stubs take no plain object as an item


def _sort_keys(data: pa.Table | pa.RecordBatch, by: Sequence[str]) -> list[Any]:
    """Keys, most significant first, ordering rows as the in-memory frame is sorted, nulls first.
    Datetimes and integers: int64, null as INT64_MIN (NaT's asi8). Floats: a class (0 null, 1 NaN, 2
    number, as Arrow sorts them) and the number. Strings and the rest: Python values in an object array,
    null as _NULL; strings compare by code point, which is Arrow's UTF-8 byte order. np.lexsort over
    the keys (reversed) and the merge's tuple comparisons order alike. Read from Arrow's buffers:
    pyarrow's to_numpy() imports pandas (see analyzer._pandas), its cast and fill_null pyarrow.compute."""
    keys: list[Any] = []
    for name in by:
        col = _array(data.column(name))
        t, valid = col.type, _validity(col)
        if pa.types.is_timestamp(t) or (pa.types.is_integer(t) and t != pa.uint64()):
            values = _fixed(col).astype(np.int64, copy=False)
            keys.append(values if valid is None else np.where(valid, values, _INT64_MIN))
        elif pa.types.is_floating(t):
            values = _fixed(col).astype(np.float64)
            cls = np.where(np.isnan(values), 1, 2).astype(np.int8)
            if valid is not None:
                cls[~valid] = 0
            values[cls < 2] = 0
            keys += [cls, values]
        else:  # an object array (a list of str would become numpy strings, which drop trailing NULs)
            values = np.fromiter(col.to_pylist(), dtype=object, count=len(col))
            if valid is not None:
                values[~valid] = _NULL
            keys.append(values)
    return keys


def _sorted(table: pa.Table, by: Sequence[str]) -> pa.Table:
    """Stable sort by the keys, as the in-memory frame is sorted (the table itself when in order)."""
    order = _order(_sort_keys(table, by))
    return table if _identity(order) else _take(table, order)


def _identity(order: np.ndarray) -> bool:
    return bool((order == np.arange(len(order))).all())


def _order(keys: list[Any]) -> np.ndarray:
    """np.lexsort(keys[::-1]) (stable; keys most significant first), each key after the first compared
    only among the rows whose earlier keys tie: comparing Python strings is slow, and the first key
    (a timestamp) seldom ties."""
    order = np.argsort(keys[0], kind="stable")
    same = np.ones(max(len(order) - 1, 0), bool)  # same[i]: rows order[i] and order[i + 1] tie so far
    for j in range(1, len(keys)):
        previous = keys[j - 1][order]
        same &= previous[1:] == previous[:-1]
        if not same.any():
            break
        tied = np.flatnonzero(np.concatenate(([False], same)) | np.concatenate((same, [False])))
        group = np.cumsum(np.concatenate(([True], ~same)))[tied]  # ties are runs of positions
        order[tied] = order[tied][np.lexsort((keys[j][order[tied]], group))]
    return order


def _validity(arr: pa.Array) -> np.ndarray | None:
    """A bool per row (True: not null); None when no row is null."""
    if not arr.null_count:
        return None
    buf = arr.buffers()[0]
    if buf is None:  # the null type
        return np.zeros(len(arr), bool)
    return _bits(buf, arr.offset, len(arr))


def _bits(buf: pa.Buffer, offset: int, length: int) -> np.ndarray:
    """Bits offset..offset+length of a bitmap (least significant bit first), as bools."""
    first = offset // 8
    raw = np.frombuffer(buf, np.uint8, count=(offset + length + 7) // 8 - first, offset=first)
    return np.unpackbits(raw, bitorder="little")[offset % 8: offset % 8 + length].view(bool)


def _fixed(arr: pa.Array, kind: str = "") -> np.ndarray:
    """The values of a fixed-width array (anything under nulls), as numpy: `kind` "u" reads them as
    unsigned integers of the same width, else as the type's own numbers."""
    t = arr.type
    width = t.bit_width // 8
    if not kind:
        kind = "f" if pa.types.is_floating(t) else "u" if pa.types.is_unsigned_integer(t) else "i"
    return np.frombuffer(arr.buffers()[1], np.dtype(f"{kind}{width}"), count=len(arr), offset=arr.offset * width)


def _take(table: pa.Table, indices: np.ndarray) -> pa.Table:
    """table.take(indices) with numpy for the column types of the frames (Table.take imports
    pyarrow.compute: 50-90 ms). Indices must be in 0..len-1 (the sorts' permutations are)."""
    idx = np.asarray(indices, dtype=np.intp)
    nulls: dict[pa.DataType, pa.Array] = {}  # all-null columns share one array per type (immutable)
    columns = []
    for col in table.columns:
        arr = _array(col)
        if len(idx) and arr.null_count == len(arr):
            if arr.type not in nulls:
                nulls[arr.type] = pa.nulls(len(idx), arr.type)
            columns.append(nulls[arr.type])
        else:
            columns.append(_take_array(arr, idx))
    return pa.Table.from_arrays(columns, schema=table.schema)


def _array(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One array of a column: combine_chunks() copies even a single chunk."""
    if isinstance(col, pa.ChunkedArray):
        return col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
    return col


_WIDTHS = (8, 16, 32, 64)  # bits of the fixed-width values numpy reads


def _take_array(arr: pa.Array, idx: np.ndarray) -> pa.Array:
    t, n = arr.type, len(idx)
    if n == 0:
        return arr.slice(0, 0)
    if arr.null_count == len(arr):  # (the null type, and columns nobody filled: no buffer to read)
        return pa.nulls(n, t)
    valid = _validity(arr)
    nulls, validity = 0, None
    if valid is not None:
        kept = np.take(valid, idx)  # (np.take: faster than indexing)
        nulls = n - int(np.count_nonzero(kept))
        if nulls:
            validity = pa.py_buffer(np.packbits(kept, bitorder="little"))
    buffers = arr.buffers()
    if pa.types.is_boolean(t):
        data = np.packbits(np.take(_bits(buffers[1], arr.offset, len(arr)), idx), bitorder="little")
        return pa.Array.from_buffers(t, n, [validity, pa.py_buffer(data)], null_count=nulls)
    if (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_temporal(t)) and t.bit_width in _WIDTHS:
        return pa.Array.from_buffers(t, n, [validity, pa.py_buffer(np.take(_fixed(arr, "u"), idx))], null_count=nulls)
    large = pa.types.is_large_string(t) or pa.types.is_large_binary(t)
    if large or pa.types.is_string(t) or pa.types.is_binary(t):
        otype = np.dtype(np.int64 if large else np.int32)
        offsets = np.frombuffer(buffers[1], otype, count=len(arr) + 1, offset=arr.offset * otype.itemsize)
        widths = np.diff(offsets)
        lengths = np.take(widths, idx)
        new = np.zeros(n + 1, np.int64)
        np.cumsum(lengths, out=new[1:])
        if large or new[-1] <= np.iinfo(np.int32).max:  # else too long for 32-bit offsets: Arrow's take below
            data = _gather_bytes(buffers[2], offsets, widths, idx, lengths, new)
            return pa.Array.from_buffers(t, n, [validity, pa.py_buffer(new.astype(otype, copy=False)),
                                                pa.py_buffer(data)], null_count=nulls)
    return arr.take(pa.array(idx))  # any other type (imports pyarrow.compute)


def _gather_bytes(buf: pa.Buffer, offsets: np.ndarray, widths: np.ndarray, idx: np.ndarray, lengths: np.ndarray,
                  new: np.ndarray) -> np.ndarray:
    """The bytes of rows `idx` of a string array (`offsets`, `widths` = their differences), one row after
    the other: the data of new offsets `new` (rows `lengths` long)."""
    total = int(new[-1])
    if not total:  # all empty or null: the buffer may be missing
        return np.zeros(0, np.uint8)
    base, end = int(offsets[0]), int(offsets[-1])
    data = np.frombuffer(buf, np.uint8, count=end - base, offset=base)
    width = int(widths.max())
    if np.count_nonzero(widths) * width == end - base:  # every non-empty row is W bytes (uids, hashes, file names)
        starts = np.take(offsets, idx if total == len(idx) * width else idx[lengths > 0])  # of the non-empty rows
        return np.take(data.view(f"V{width}"), (starts - base) // width).view(np.uint8)  # as W-byte records
    # each output byte's source: its row's start, moved to where the row goes, plus its position
    itype = np.int32 if max(end - base, total) <= np.iinfo(np.int32).max else np.int64
    index = np.repeat((np.take(offsets, idx) - base - new[:-1]).astype(itype), lengths)
    index += np.arange(total, dtype=index.dtype)
    return np.take(data, index)


class _RunReader:
    """One sorted run, read one record batch at a time; `pos` rows of the batch already taken."""

    def __init__(self, path: str, by: Sequence[str]) -> None:
        self._batches, self.by = _batches(path), by
        self.batch: pa.RecordBatch | None = None
        self.keys: list[Any] = []
        self.pos = 0

    def load(self) -> bool:
        """Move to the next non-empty batch; False at the end of the run."""
        for batch in self._batches:
            if batch.num_rows:
                self.batch, self.keys, self.pos = batch, _sort_keys(batch, self.by), 0
                return True
        return False

    def key(self, i: int) -> tuple[Any, ...]:
        return tuple(k[i] for k in self.keys)

    def end(self, bound: tuple[Any, ...], inclusive: bool) -> int:
        """Index after the rows from `pos` whose key is below `bound` (or equal, when inclusive)."""
        search = bisect.bisect_right if inclusive else bisect.bisect_left
        return search(range(len(self.keys[0])), bound, lo=self.pos, key=self.key)


def _merge(paths: Sequence[str], by: Sequence[str], emit: Callable[[pa.Table], None]) -> None:
    """K-way merge of sorted runs, stable (equal keys keep run order, then position), batch by batch.

    Each step takes T, the smallest last key of the runs' current batches (the first run having it:
    t). No row still unread can be below T, so every row below T is final, and so are rows equal to T
    in runs up to t (later rows equal to T belong to later runs or come later in run t). Run t's batch
    is then used up, so each step reads at least one batch; the rows emitted are sorted stably."""
    readers = [r for r in (_RunReader(p, by) for p in paths) if r.load()]
    while readers:
        lasts = [r.key(len(r.keys[0]) - 1) for r in readers]
        t = min(range(len(readers)), key=lasts.__getitem__)
        pieces = []
        for i, r in enumerate(readers):
            end = r.end(lasts[t], inclusive=i <= t)
            if end > r.pos:
                assert r.batch is not None
                pieces.append(r.batch.slice(r.pos, end - r.pos))
                r.pos = end
        table = pa.Table.from_batches(pieces)
        emit(table if len(pieces) == 1 else _sorted(table, by))  # a slice of one run is in order
        readers = [r for r in readers if r.pos < len(r.keys[0]) or r.load()]


class SortedSink(_Sink):
    """Sorts every row written by `by` (stable: rows with equal keys keep the order they came in) and
    writes them to `inner` at close, holding at most one run plus one batch per merged run (an input
    that comes in order: up to `hold_bytes` of it, HOLD_BYTES by default, then it is spilled unsorted)."""

    def __init__(self, inner: TableSink, by: Sequence[str], *, run_rows: int | None = None,
                 batch_rows: int | None = None, fan_in: int | None = None, spill_dir: str | None = None,
                 hold_bytes: int | None = None) -> None:
        self.inner, self.by = inner, tuple(by)
        self.arrow_schema = inner.arrow_schema
        self.run_rows = run_rows or RUN_ROWS
        self.batch_rows = batch_rows or BATCH_ROWS
        self.fan_in = max(2, fan_in or FAN_IN)
        self._spill = _Spill(spill_dir)
        self._runs: list[str] = []
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._pending_bytes = 0
        self.runs = 0  # sorted runs spilled
        self.merge_passes = 0  # passes over the data before the final merge
        # every row so far came in order (sorted, and at or after the rows before: a Dask run's partitions,
        # sorted on the workers): it is held up to hold_bytes, and the runs spilled beyond need no sort
        # and are written one after the other, not merged
        self.ordered = True
        self.hold_bytes = HOLD_BYTES if hold_bytes is None else hold_bytes
        self._last: tuple[Any, ...] | None = None  # the key of the last row written

    def write_table(self, table: pa.Table) -> None:
        if self.ordered and table.num_rows:
            self.ordered = self._follows(table)
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self._pending_bytes += table.nbytes
        if self._pending_bytes > self.hold_bytes if self.ordered else self._pending_rows >= self.run_rows:
            self._spill_pending()

    def _follows(self, table: pa.Table) -> bool:
        """Are the table's rows in order, and none before the last row written? (Equal keys are in
        order: the sort is stable.) The first key alone rejects most unordered tables (a serial run's
        chunks come in flow-end order) before the others are read."""
        first = _sort_keys(table, self.by[:1])
        if len(first) == 1 and first[0].dtype == np.int64:
            ts = first[0]
            if (self._last is not None and ts[0] < self._last[0]) or bool((ts[1:] < ts[:-1]).any()):
                return False
        keys = _sort_keys(table, self.by)
        if not _identity(_order(keys)):
            return False
        head = tuple(k[0] for k in keys)
        if self._last is not None and head < self._last:
            return False
        self._last = tuple(k[-1] for k in keys)
        return True

    def _spill_pending(self) -> None:
        if not self._pending_rows:
            return
        table = pa.concat_tables(self._pending)
        self._pending, self._pending_rows, self._pending_bytes = [], 0, 0
        parts = -(-table.num_rows // self.run_rows)
        size = -(-table.num_rows // parts)  # equal runs: 16400 rows make two of 8200, not 16384 and 16
        for start in range(0, table.num_rows, size):
            run = self._spill.new_run(self.arrow_schema, self.batch_rows)
            piece = table.slice(start, size)
            run.write_table(piece if self.ordered else _sorted(piece, self.by))
            self._runs.append(run.close())
            self.runs += 1

    def close(self) -> None:
        try:
            if not self._runs and (self.ordered or self._pending_rows <= self.run_rows):
                # everything fits one run (or came in order and was held): sorted in memory, as that run
                # would be, and written without the spill file and the merge (for 6,315 flows of 212
                # columns: ~10M instructions)
                if self._pending_rows:
                    table = pa.concat_tables(self._pending)
                    if not self.ordered:
                        self.inner.write_table(_sorted(table, self.by))
                    for start in range(0, table.num_rows, self.run_rows) if self.ordered else ():
                        self.inner.write_table(table.slice(start, self.run_rows))  # run by run, as spilled
                self._pending, self._pending_rows, self._pending_bytes = [], 0, 0
                self.inner.close()
                return
            self._spill_pending()
            runs = self._runs
            if self.ordered:  # each run follows the one before: read them in turn
                for path in runs:
                    for batch in _batches(path):
                        self.inner.write_table(pa.Table.from_batches([batch]))
                self.inner.close()
                return
            while len(runs) > self.fan_in:  # merge consecutive groups: stability needs run order kept
                self.merge_passes += 1
                runs = [self._merge_to_run(runs[i:i + self.fan_in]) for i in range(0, len(runs), self.fan_in)]
            _merge(runs, self.by, self.inner.write_table)
            self.inner.close()
        except BaseException:
            self.inner.abort()
            raise
        finally:
            self._spill.remove()

    def _merge_to_run(self, group: list[str]) -> str:
        if len(group) == 1:
            return group[0]
        run = self._spill.new_run(self.arrow_schema, self.batch_rows)
        _merge(group, self.by, run.write_table)
        for path in group:  # the disk holds the data about once, not once per pass
            os.unlink(path)
        return run.close()

    def abort(self) -> None:
        try:
            self.inner.abort()
        finally:
            self._spill.remove()


def open_output(fmt: str, out: str | None, frame_schema: dict[str, str], *, sort_by: Sequence[str] | None = None,
                spill_dir: str | None = None) -> FrameWriter | SortedSink:
    """A sink writing a frame to `out` (None: stdout) as `fmt`; sorted by `sort_by` when given."""
    writer = FrameWriter(fmt, out, frame_schema, spill_dir=spill_dir)
    if not sort_by:
        return writer
    try:
        return SortedSink(writer, sort_by, spill_dir=spill_dir)
    except BaseException:
        writer.abort()
        raise


__all__ = ["BATCH_ROWS", "FAN_IN", "ROW_GROUP_ROWS", "RUN_ROWS", "STREAM_FORMATS", "FrameWriter", "SortedSink",
           "TableSink", "arrow_schema", "open_output"]

