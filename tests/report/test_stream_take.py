"""The streaming output's sort without pyarrow.compute: analyzer.report.stream._take and _sorted.

`_take` gathers rows with numpy and must equal Arrow's `Table.take` for every column type the frames
have, on slices (non-zero offsets, bitmaps not starting on a byte) and multi-chunk columns; `_sorted`
must equal Arrow's stable sort with nulls first; the CLI's parquet output must import neither
pyarrow.compute (~50-90 ms) nor pandas.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.report import stream
from analyzer.report.stream import SortedSink, _sorted, _take

ROOT = Path(__file__).resolve().parents[2]
TS = pa.timestamp("ns", tz="UTC")
TEXT = st.text(st.sampled_from("ab\x00é€😀"), max_size=4)  # empty, NUL, 2-4 byte UTF-8
FINITE = st.floats(allow_nan=False, allow_infinity=True)


@st.composite
def one_width_texts(draw: st.DrawFn) -> st.SearchStrategy[str]:
    """Strings of one UTF-8 length per table, or empty (uids, hashes): _take copies them as whole rows."""
    chars, size = draw(st.sampled_from(["ab\x00", "éß", "€", "😀"])), draw(st.integers(1, 4))
    return st.text(st.sampled_from(chars), min_size=size, max_size=size) | st.just("")


PER_TABLE = {"w", "w32"}  # columns whose values' strategy is drawn once per table
COLUMNS: dict[str, tuple[pa.DataType, Any]] = {
    "s": (pa.large_string(), TEXT),
    "s32": (pa.string(), TEXT),
    "w": (pa.large_string(), one_width_texts()),
    "w32": (pa.string(), one_width_texts()),
    "i8": (pa.int8(), st.integers(-2**7, 2**7 - 1)),
    "i16": (pa.int16(), st.integers(-2**15, 2**15 - 1)),
    "i32": (pa.int32(), st.integers(-2**31, 2**31 - 1)),
    "i64": (pa.int64(), st.integers(-2**63, 2**63 - 1)),
    "b": (pa.bool_(), st.booleans()),
    "f": (pa.float64(), st.one_of(FINITE, st.just(float("nan")))),
    "ts": (TS, st.integers(-2**62, 2**62)),
    "n": (pa.null(), st.none()),
}


def comparable(t: pa.Table) -> pa.Table:
    """`t` with float columns as their bits: NaN equals NaN in .equals and to_pylist."""
    return pa.table({name: col.combine_chunks().view(pa.int64()) if pa.types.is_floating(col.type) else col
                     for name, col in zip(t.column_names, t.columns, strict=True)})


def assert_same(got: pa.Table, want: pa.Table) -> None:
    assert got.schema == want.schema
    got, want = comparable(got), comparable(want)
    assert got.equals(want)
    assert got.to_pylist() == want.to_pylist()


@st.composite
def tables(draw: st.DrawFn, columns: dict[str, tuple[pa.DataType, Any]] = COLUMNS) -> pa.Table:
    """A table of the column types, often with nulls, in several chunks, then maybe sliced, or one
    record batch of it: columns whose offsets are not zero."""
    n = draw(st.integers(0, 40))
    data = {}
    for name, (atype, values) in columns.items():
        if name in PER_TABLE:
            values = draw(values)
        null_rate = draw(st.sampled_from([0.0, 0.3, 1.0]))
        cells = draw(st.lists(st.one_of(st.none(), values) if null_rate else values, min_size=n, max_size=n))
        if null_rate == 1.0:
            cells = [None] * n
        data[name] = pa.array(cells, atype)
    table = pa.table(data)
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=3)))
    table = pa.concat_tables([table.slice(a, b - a) for a, b in zip([0, *cuts], [*cuts, n], strict=True)])
    shape = draw(st.sampled_from(["whole", "slice", "batch", "batches"]))
    if shape != "whole" and n:
        start = draw(st.integers(0, n))
        table = table.slice(start, draw(st.integers(0, n - start)))
    if shape in ("batch", "batches") and table.num_rows:
        batches = table.combine_chunks().to_batches(max_chunksize=draw(st.integers(1, 9)))
        if shape == "batch":
            batches = [draws_one(draw, batches)]
        table = pa.Table.from_batches(batches, schema=table.schema)
    return table


def draws_one(draw: st.DrawFn, items: list[Any]) -> Any:
    return items[draw(st.integers(0, len(items) - 1))]


@st.composite
def indices(draw: st.DrawFn, n: int) -> np.ndarray:
    kind = draw(st.sampled_from(["permutation", "repeated", "empty"]))
    if kind == "permutation" and n:
        return np.array(draw(st.permutations(range(n))), dtype=np.int64)
    if kind == "repeated" and n:
        return np.array(draw(st.lists(st.integers(0, n - 1), max_size=60)), dtype=np.int64)
    return np.zeros(0, dtype=np.int64)


# ------------------------------------------------------------------------ _take
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_take_equals_arrows_take(data):
    table = data.draw(tables())
    idx = data.draw(indices(table.num_rows))
    assert_same(_take(table, idx), table.take(pa.array(idx)))


def test_take_reads_from_the_offset_of_every_buffer():
    """A slice starting at row 11: offsets and values start mid-buffer, bitmaps mid-byte."""
    rng = np.random.default_rng(0)
    n = 50
    cells = {name: [None if rng.random() < 0.3 else v for v in vs] for name, vs in {
        "s": [f"é{i}" * (i % 4) for i in range(n)], "s32": [str(i) for i in range(n)],
        "i8": [i % 100 for i in range(n)], "i64": list(range(n)), "b": [i % 3 == 0 for i in range(n)],
        "f": [i / 7 for i in range(n)], "ts": [i * 10**9 for i in range(n)]}.items()}
    whole = pa.table({name: pa.array(vs, COLUMNS[name][0]) for name, vs in cells.items()})
    table = whole.slice(11, 30)
    assert all(col.num_chunks == 1 and col.chunk(0).offset == 11 for col in table.columns)
    for idx in (np.arange(30)[::-1], np.array([0, 0, 29, 5, 5, 13]), np.arange(30)):
        assert_same(_take(table, idx), table.take(pa.array(idx)))
    assert comparable(_take(table, np.arange(30)[::-1])).to_pylist() == comparable(whole).to_pylist()[40:10:-1]


def test_take_of_empty_and_all_null_string_columns():
    for values in ([""] * 5, [None] * 5, ["", None, "", None, ""]):
        for atype in (pa.large_string(), pa.string()):
            table = pa.table({"s": pa.array(values, atype)})
            for idx in (np.array([4, 0, 0, 2]), np.zeros(0, np.int64)):
                assert_same(_take(table, idx), table.take(pa.array(idx)))


def test_take_falls_back_to_arrow_for_other_types():
    table = pa.table({"l": pa.array([[1], None, [2, 3]], pa.list_(pa.int8())),
                      "d": pa.array(["x", "y", "x"]).dictionary_encode()}).slice(1)
    assert_same(_take(table, np.array([1, 0, 1])), table.take(pa.array([1, 0, 1])))


# ------------------------------------------------------------------------ _sorted
SORT_COLUMNS: dict[str, tuple[pa.DataType, Any]] = {
    "k": (pa.int64(), st.integers(-2, 2)),
    "ts": (TS, st.integers(-3, 3) | st.just(-2**63 + 1)),
    "s": (pa.large_string(), st.sampled_from(["", "a", "a\x00", "b", "é", "😀"])),
    "f": (pa.float64(), st.sampled_from([0.0, -1.5, float("nan"), float("inf")])),
    "flag": (pa.bool_(), st.booleans()),
}


def with_row_numbers(table: pa.Table) -> pa.Table:
    """A column of row numbers: any reordering of rows with equal keys shows in it."""
    return table.append_column("row", pa.array(np.arange(table.num_rows, dtype=np.int64)))


def arrow_sorted(table: pa.Table, by: list[str]) -> pa.Table:
    return table.take(pc.sort_indices(table, sort_keys=[(name, "ascending", "at_start") for name in by]))


BY = st.lists(st.sampled_from(list(SORT_COLUMNS)), min_size=1, max_size=3, unique=True)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(SORT_COLUMNS), BY)
def test_sorted_equals_arrows_stable_sort_nulls_first(table, by):
    table = with_row_numbers(table)
    assert_same(_sorted(table, by), arrow_sorted(table, by))


class Collect:
    """A TableSink keeping what it is given."""

    def __init__(self, schema: pa.Schema) -> None:
        self.arrow_schema, self.tables, self.closed = schema, [], False

    def write_table(self, table: pa.Table) -> None:
        self.tables.append(table)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        raise AssertionError("aborted")


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(SORT_COLUMNS), BY, st.integers(1, 12), st.integers(1, 5), st.integers(2, 4), st.integers(1, 10))
def test_sorted_sink_runs_and_merges_equal_arrows_stable_sort(tmp_path_factory, table, by, run_rows, batch_rows,
                                                               fan_in, chunk):
    """Many runs and merge passes: keys read batch by batch in the merge (nulls in every key column)
    must order as the in-memory sort does."""
    table = with_row_numbers(table)
    inner = Collect(table.schema)
    with SortedSink(inner, by, run_rows=run_rows, batch_rows=batch_rows, fan_in=fan_in,
                    spill_dir=str(tmp_path_factory.mktemp("spill"))) as sink:
        for start in range(0, table.num_rows, chunk):
            sink.write_table(table.slice(start, chunk))
    assert inner.closed
    assert_same(pa.concat_tables([table.schema.empty_table(), *inner.tables]), arrow_sorted(table, by))


# ------------------------------------------------------------------------ the CLI imports
RUN_CLI = """
import json, sys
import analyzer._pandas
analyzer._pandas.defer_in_pyarrow()
import analyzer.report.stream as stream
tiny = json.loads(sys.argv[2])
sinks = []
if tiny:  # every size shrunk: flows reach the sink a few at a time, many runs, several merge passes
    import analyzer.flows.table as flow_table
    from analyzer import pipeline
    flow_table.EXPORT_CHUNK = flow_table.EXPORT_CHUNK_WITH_PAYLOAD = 2
    pipeline.FLOW_ROWS_PER_FRAME, pipeline.ROWS_PER_CHUNK = 3, 4
    stream.RUN_ROWS, stream.BATCH_ROWS, stream.FAN_IN, stream.ROW_GROUP_ROWS = 5, 3, 2, 4
open_output = stream.open_output
def keep(*args, **kwargs):
    sinks.append(open_output(*args, **kwargs))
    return sinks[-1]
stream.open_output = keep
from analyzer.cli import main
main(["flows", "captures", "--format", "parquet", "--out", sys.argv[1]], standalone_mode=False)
print(json.dumps({"compute": "pyarrow.compute" in sys.modules, "pandas": "pandas" in sys.modules,
                  "runs": sinks[0].runs, "merge_passes": sinks[0].merge_passes}))
"""


def run_cli(out: Path, tiny: bool) -> dict[str, Any]:
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(RUN_CLI), str(out), json.dumps(tiny)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    result: dict[str, Any] = json.loads(r.stdout.splitlines()[-1])
    return result


def test_cli_parquet_output_imports_neither_pyarrow_compute_nor_pandas(tmp_path):
    plain, tiny = tmp_path / "flows.parquet", tmp_path / "tiny.parquet"
    got = run_cli(plain, tiny=False)
    assert got["runs"] == 0, got  # every flow fits one run: sorted in memory, no spill file
    assert not got["compute"] and not got["pandas"], got
    got = run_cli(tiny, tiny=True)
    assert got["runs"] > 10 and got["merge_passes"] >= 2, got  # the merge ran, many times
    assert not got["compute"] and not got["pandas"], got
    assert pq.read_table(plain).num_rows > 10
    assert pq.read_table(tiny).equals(pq.read_table(plain))


def test_sizes_the_cli_test_shrinks_exist():
    """RUN_CLI sets module attributes: a renamed one would silently leave the sizes as they are."""
    import analyzer.flows.table as flow_table
    from analyzer import pipeline

    for module, names in ((flow_table, ["EXPORT_CHUNK", "EXPORT_CHUNK_WITH_PAYLOAD"]),
                          (pipeline, ["FLOW_ROWS_PER_FRAME", "ROWS_PER_CHUNK"]),
                          (stream, ["RUN_ROWS", "BATCH_ROWS", "FAN_IN", "ROW_GROUP_ROWS"])):
        for name in names:
            assert isinstance(getattr(module, name), int), name


def test_parquet_writer_without_pyarrow_parquet_writes_the_public_writers_bytes(tmp_path):
    """FrameWriter writes Parquet with pyarrow's own writer (no `pyarrow.parquet` import: pyarrow.fs
    and the cloud filesystems); the file must be byte for byte the public ParquetWriter's, with every
    declared dtype, nulls, an all-null column and dictionary-worthy strings."""
    import io

    from analyzer.schema import arrow_schema

    declared = {"s": "string", "i8": "Int8", "i16": "Int16", "i32": "Int32", "i64": "Int64", "b": "boolean",
                "f": "float64", "F": "Float64", "ts": "datetime64[ns, UTC]", "empty": "string"}
    schema = arrow_schema(declared)
    n = 300
    table = pa.table({
        "s": pa.array([None if i % 7 == 0 else f"proto{i % 5}" for i in range(n)], pa.large_string()),
        "i8": pa.array([i % 100 for i in range(n)], pa.int8()), "i16": pa.array(range(n), pa.int16()),
        "i32": pa.array([None if i % 3 else i for i in range(n)], pa.int32()),
        "i64": pa.array([i * 10**12 for i in range(n)], pa.int64()),
        "b": pa.array([None if i % 4 == 0 else i % 2 == 0 for i in range(n)], pa.bool_()),
        "f": pa.array([i / 3 for i in range(n)], pa.float64()), "F": pa.array([None] * n, pa.float64()),
        "ts": pa.array([1_700_000_000 * 10**9 + i for i in range(n)], pa.int64()).view(schema.field("ts").type),
        "empty": pa.nulls(n, pa.large_string())}, schema=schema)
    out = tmp_path / "ours.parquet"
    writer = stream.FrameWriter("parquet", str(out), declared)
    assert not isinstance(writer._parquet, pq.ParquetWriter)  # the import-free path is the one taken
    writer.write_table(table)
    writer.close()
    public = io.BytesIO()
    with pq.ParquetWriter(public, schema) as w:
        w.write_table(table)
    assert out.read_bytes() == public.getvalue()
