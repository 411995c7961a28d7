"""The policy's frames as Arrow columns, and the vectorised operations rules are written with.

A `Cols` is a dict of equally long, unchunked Arrow arrays, one per column, in the Arrow types the
declared schemas give (`analyzer.schema.arrow_type`): strings ``large_string``, timestamps
``timestamp[ns, UTC]``, ``Int*`` integers, ``boolean`` bool, all nullable. The flow table's chunks
are already such columns, so a streamed audit judges them as they come.

Why not pandas (the policy layer was written over pandas frames until 2026-12-07): importing pandas
alone costs ~0.35 CPU s, 9% of `intransit flows` on the benchmark capture, and each pandas operation
has a fixed cost of tens of microseconds that ~25 rules x a few dozen operations x every chunk pay
again (measured: the stage's floor with pandas was 0.33-0.40 s whatever the chunk size). The audit's
target is 90% of the throughput of `flows`: 0.42 s of allowance on that capture. pandas stays at
the API edge (`evaluate()`, `analyze()`), never on the streamed path.

Conventions, so rules stay short and null-safe:
- masks are numpy boolean arrays; a null never counts as true (`true`, `false`, `isin`, `eq`);
- `pick` selects the flagged rows (only the columns the evidence needs), `text`/`day`/`join` build
  the evidence for those rows only, `found` makes the `Hits`;
- wire strings are quoted as they are: escaping belongs to the report layer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from analyzer.policy import _compute as pc

__all__ = [
    "STRING",
    "TS_TYPE",
    "Cols",
    "Hits",
    "as_cols",
    "day",
    "eq",
    "false",
    "fill",
    "found",
    "from_codes",
    "ints",
    "isin",
    "join",
    "known",
    "length",
    "lower",
    "nanos",
    "no_hits",
    "notnull",
    "numpy_of",
    "only_strings",
    "pick",
    "seconds",
    "span",
    "strings",
    "take",
    "text",
    "true",
    "where",
]

Cols = dict[str, pa.Array]
STRING = pa.large_string()
TS_TYPE = pa.timestamp("ns", tz="UTC")
_NAT = np.iinfo(np.int64).min
_DAY_NS = 86_400 * 10**9


@dataclass(frozen=True)
class Hits:
    """What a rule flags: per flagged row, its flow (`uid`) and a short evidence text (both
    large_string, equally long; a flow may appear more than once: `judge` keeps its first)."""

    uid: pa.Array
    evidence: pa.Array

    def __len__(self) -> int:
        return len(self.uid)


def no_hits() -> Hits:
    return Hits(pa.array([], STRING), pa.array([], STRING))


def length(cols: Mapping[str, pa.Array]) -> int:
    """The number of rows (0 for no column)."""
    for a in cols.values():
        return len(a)
    return 0


def _one(a: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(a, pa.ChunkedArray):
        return a.combine_chunks() if a.num_chunks != 1 else a.chunk(0)
    return a


def as_cols(columns: Mapping[str, Any] | pa.Table) -> Cols:
    """Columns as a `Cols` (chunked arrays combined; string columns as large_string)."""
    items = ((n, columns.column(n)) for n in columns.column_names) if isinstance(columns, pa.Table) \
        else columns.items()
    out: Cols = {}
    for name, a in items:
        a = _one(a if isinstance(a, pa.Array | pa.ChunkedArray) else pa.array(a))
        if pa.types.is_string(a.type):
            a = pc.cast(a, STRING)
        out[name] = a
    return out


def take(cols: Mapping[str, pa.Array], rows: np.ndarray, names: Iterable[str] | None = None) -> Cols:
    """The rows of `cols` at `rows` (a boolean mask, or positions; -1 gives a null row), only `names`
    (default all)."""
    names = list(cols) if names is None else list(dict.fromkeys(names))
    rows = np.asarray(rows)
    if rows.dtype == bool:
        at = pa.array(np.flatnonzero(rows))
    else:
        rows = rows.astype(np.int64, copy=False)
        at = pa.array(rows, mask=rows < 0) if (rows < 0).any() else pa.array(rows)
    return {n: pc.take(cols[n], at) for n in names}


def pick(cols: Mapping[str, pa.Array], mask: np.ndarray, *names: str) -> Cols:
    """The flagged rows of `cols`, only `uid` and `names`: evidence is built for those rows alone."""
    return take(cols, np.asarray(mask, dtype=bool), ["uid", *names])


# --- masks (numpy booleans; null is never true) --------------------------------------------------

def _np_bool(a: pa.Array | pa.ChunkedArray) -> np.ndarray:
    a = _one(a)
    if a.null_count:
        a = pc.fill_null(a, pa.scalar(False, pa.bool_()))
    return numpy_of(a).astype(bool, copy=False)


def true(a: pa.Array) -> np.ndarray:
    """Where a boolean column is true (null: false)."""
    return _np_bool(a)


def false(a: pa.Array) -> np.ndarray:
    """Where a boolean column is false (null: false, i.e. not decided is not "false")."""
    return _np_bool(pc.invert(a))


def notnull(a: pa.Array) -> np.ndarray:
    return numpy_of(pc.is_valid(a))


def isin(a: pa.Array, values: Iterable[Any]) -> np.ndarray:
    """Where the value is one of `values` (null: false; strings compared exactly)."""
    vals = [v for v in values if v is not None]
    if not vals or not len(a):
        return np.zeros(len(a), dtype=bool)
    return _np_bool(pc.is_in(a, value_set=pa.array(vals, type=a.type)))


def eq(a: pa.Array, value: Any) -> np.ndarray:
    """Where the value equals `value` (null: false)."""
    return _np_bool(pc.equal(a, pa.scalar(value, type=a.type)))


def known(a: pa.Array) -> np.ndarray:
    """Alias of `notnull`, for timestamps and numbers compared with `nanos`/`ints`."""
    return notnull(a)


def ints(a: pa.Array, fill: int = 0) -> np.ndarray:
    """An integer column as int64, null -> `fill`."""
    a = _one(a)
    if a.null_count:
        a = pc.fill_null(a, pa.scalar(fill, a.type))
    return numpy_of(a).astype(np.int64, copy=False)


def nanos(a: pa.Array) -> np.ndarray:
    """A timestamp column as int64 nanoseconds since the epoch, null -> the int64 minimum (compare
    only where `known`)."""
    a = _one(a)
    if pa.types.is_timestamp(a.type):
        a = pc.cast(a, pa.timestamp("ns", tz=a.type.tz)).view(pa.int64())
    return ints(a, _NAT)


# --- strings -------------------------------------------------------------------------------------

def lower(a: pa.Array) -> pa.Array:
    return pc.utf8_lower(a)


def strings(values: Sequence[str | None]) -> pa.Array:
    return pa.array(list(values), type=STRING)


def from_codes(names: Sequence[str | None], codes: np.ndarray) -> pa.Array:
    """`names[code]` per row (null where code < 0), by Arrow's take."""
    codes = np.asarray(codes, dtype=np.int64)
    return pc.take(strings(names), pa.array(codes, mask=codes < 0) if (codes < 0).any() else pa.array(codes))


def where(mask: np.ndarray, a: pa.Array | str, b: pa.Array | str) -> pa.Array:
    """`a` where mask, else `b` (arrays aligned with the mask, or constant strings)."""
    def arr(x: pa.Array | str) -> Any:
        return pa.scalar(x, STRING) if isinstance(x, str) else x
    return pc.if_else(pa.array(np.asarray(mask, dtype=bool)), arr(a), arr(b))


def text(a: pa.Array, missing: str = "?") -> pa.Array:
    """A column as evidence strings (null -> `missing`), formatted as pandas' `astype("string")`
    formatted them before (floats as Python's `str`: 12.0 is "12.0"; booleans "True"/"False")."""
    a = _one(a)
    t = a.type
    if pa.types.is_floating(t):
        out = strings([None if v is None else str(float(v)) for v in a.to_pylist()])
    elif pa.types.is_boolean(t):
        out = strings([None if v is None else str(bool(v)) for v in a.to_pylist()])
    elif pa.types.is_timestamp(t):
        raise TypeError("text() of a timestamp: use day()")
    else:
        out = pc.cast(a, STRING)
    return pc.fill_null(out, pa.scalar(missing, out.type)) if out.null_count else out


def day(a: pa.Array, missing: str = "?") -> pa.Array:
    """The day (YYYY-MM-DD, UTC) of each timestamp, formatted once per distinct day."""
    ns = nanos(a)
    ok = known(a)
    days, codes = np.unique(ns[ok] // _DAY_NS, return_inverse=True)
    names = [str(d) for d in days.astype("datetime64[D]")]
    every = np.full(len(ns), len(names), dtype=np.int64)
    every[ok] = codes.reshape(-1)
    return from_codes([*names, missing], every)


def join(*parts: pa.Array | str) -> pa.Array:
    """The parts (string arrays aligned on the same rows, and constant strings) joined row by row
    in one Arrow call; null where an array part is null (wrap those in `text` first)."""
    arrays = [pa.scalar(p, STRING) if isinstance(p, str) else pc.cast(_one(p), STRING) for p in parts]
    return pc.binary_join_element_wise(*arrays, pa.scalar("", STRING))


def found(rows: Mapping[str, pa.Array], evidence: pa.Array | str) -> Hits:
    """Hits from the flagged rows (`pick`: they have `uid`) and their evidence (aligned, or one text)."""
    uid = pc.cast(_one(rows["uid"]), STRING)
    if isinstance(evidence, str):
        ev = pa.array([evidence] * len(uid), type=STRING) if len(uid) else pa.array([], STRING)
    else:
        ev = pc.cast(_one(evidence), STRING)
    return Hits(uid, ev)


# --- added by rules-a

def only_strings(values: Iterable[Any]) -> list[str]:
    """The str values among `values` (a rule option's list), in order: pandas' `isin` on a string
    column ignored the others, so a list holding a number matches nothing there instead of failing."""
    return [v for v in values if isinstance(v, str)]


# --- added by rules-b

def seconds(ns: np.ndarray) -> np.ndarray:
    """Durations in int64 nanoseconds as float seconds, bit for bit as pandas' `total_seconds` (3.x)
    made them for the rules before (the integer seconds and the sub-second rest divided apart, and
    above 2**53 ns a result that rounded onto a whole second nudged off it by one ulp): evidence and
    day counts built from them must not move."""
    ns = np.asarray(ns, dtype=np.int64)
    floor_s, residual = np.divmod(ns, 10**9)
    result = floor_s + residual / 10**9
    if (ns > 2**53).any() or (ns < -(2**53)).any():
        fixable = (residual != 0) & (np.abs(floor_s) < 2**52)
        floor_f = floor_s.astype(np.float64)
        on_floor = fixable & (result == floor_f)
        on_ceil = fixable & (result == floor_f + 1.0)
        if on_floor.any():
            result = np.where(on_floor, np.nextafter(result, result + 1.0), result)
        if on_ceil.any():
            result = np.where(on_ceil, np.nextafter(result, result - 1.0), result)
    return np.asarray(result, dtype=np.float64)


def span(later: np.ndarray, earlier: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`later - earlier` of int64 nanoseconds, and where it fits in int64 (numpy wraps silently where
    it does not, which pandas refused with an OverflowError: ~292 years apart)."""
    later = np.asarray(later, dtype=np.int64)
    earlier = np.asarray(earlier, dtype=np.int64)
    with np.errstate(over="ignore"):
        diff = later - earlier
    fits = ((later ^ earlier) & (later ^ diff)) >= 0
    return diff, fits


# --- added by core

def fill(a: pa.Array | pa.ChunkedArray, value: Any) -> pa.Array:
    """`a` with its nulls replaced by `value` (a scalar of `a`'s type). Untyped Python scalars given
    to Arrow's compute functions go through its sequence converter, which imports pandas (0.3 CPU
    s): the streamed audit never does (tests/policy/test_policy_cols.py checks a fresh process)."""
    a = _one(a)
    return pc.fill_null(a, pa.scalar(value, a.type)) if a.null_count else a


def numpy_of(a: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A numeric or boolean Arrow array without nulls as a new (writable) numpy array, read from its
    buffers: Arrow's own `to_numpy` (and numpy's `asarray` of an Arrow array) imports pandas, 0.3
    CPU s that the streamed audit never pays. Timestamps give their int64 values."""
    a = _one(a)
    if a.null_count:
        raise ValueError("numpy_of: the array has nulls (fill them first)")
    n = len(a)
    t = a.type
    if pa.types.is_boolean(t):
        if n == 0:
            return np.zeros(0, dtype=bool)
        bits = np.unpackbits(np.frombuffer(a.buffers()[1], dtype=np.uint8), bitorder="little")
        return bits[a.offset:a.offset + n].astype(bool)
    if pa.types.is_timestamp(t) or pa.types.is_date64(t) or pa.types.is_duration(t):
        dtype = np.dtype(np.int64)
    elif pa.types.is_integer(t):
        dtype = np.dtype(f"{'i' if pa.types.is_signed_integer(t) else 'u'}{t.bit_width // 8}")
    elif pa.types.is_floating(t) and t.bit_width in (32, 64):
        dtype = np.dtype(f"f{t.bit_width // 8}")
    else:
        raise TypeError(f"numpy_of: not a numeric or boolean array: {t}")
    if n == 0:
        return np.zeros(0, dtype=dtype)
    return np.frombuffer(a.buffers()[1], dtype=dtype, count=n, offset=a.offset * dtype.itemsize).copy()
