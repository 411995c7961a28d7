"""Columns are collected as Arrow arrays and become pandas frames only when read.

- `schema.arrow_column` converts a column to its dtype's Arrow type; its values must be exactly what
  pandas' own conversion to the dtype makes (`schema._pandas_column`, the reference), for any input:
  hypothesis compares the two on numpy arrays and lists with missing values, fractions, overflow.
- `schema.arrow_schema` writes the same "pandas" metadata pyarrow writes for the empty frame.
- The CLI's streaming commands never import pandas (its import is 0.6-0.9 s of every run), and
  pandas imported after pyarrow's probe was deferred is known to pyarrow (analyzer._pandas).
- `Analysis` builds each frame on first read; sinks with write_table get Arrow tables.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import analyzer
from analyzer import dissect as registry
from analyzer import pipeline, schema, verify
from analyzer.dissect.tls import schema as tls_schema

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = ROOT / "captures"
INTS = ("Int8", "Int16", "Int32", "Int64")
DTYPES = (*INTS, "string", "boolean", "float64", "Float64", schema.TS)


def _reference(values, dtype):  # type: ignore[no-untyped-def]
    """pandas' own conversion, as a Series (None when pandas refuses the input)."""
    try:
        return pd.Series(schema._pandas_column(values, dtype), dtype=dtype)
    except (TypeError, ValueError, OverflowError):
        return None


def _ours(values, dtype):  # type: ignore[no-untyped-def]
    try:
        arr = schema.arrow_column(values, dtype)
    except (TypeError, ValueError, OverflowError):
        return None
    assert arr.type == schema.arrow_type(dtype)
    return pd.Series(schema.pandas_array(arr, dtype), dtype=dtype)


def _same(values, dtype) -> None:  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():  # pandas warns before refusing some casts (both sides call it then)
        warnings.simplefilter("ignore", RuntimeWarning)
        ref, ours = _reference(values, dtype), _ours(values, dtype)
    assert (ref is None) == (ours is None), (values, dtype, ref, ours)
    if ref is not None:
        pd.testing.assert_series_equal(ours, ref, check_exact=True)


# ------------------------------------------------------------------------ Arrow columns equal pandas'
finite = st.floats(allow_nan=False, allow_infinity=False)
maybe = st.one_of


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(maybe(st.none(), st.integers(-2**70, 2**70)), max_size=20), st.sampled_from(INTS))
def test_integer_lists(values, dtype):
    _same(values, dtype)


@settings(max_examples=300, deadline=None)
@given(st.lists(maybe(st.just(math.nan), st.integers(-2**40, 2**40).map(float), finite), max_size=20),
       st.sampled_from(INTS))
def test_floats_with_nan_as_missing_integers(values, dtype):
    _same(np.array(values, dtype=np.float64), dtype)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-2**63, 2**63 - 1), max_size=20), st.sampled_from((*INTS, "float64", schema.TS)))
def test_int64_arrays(values, dtype):
    _same(np.array(values, dtype=np.int64), dtype)


@settings(max_examples=300, deadline=None)
@given(st.lists(maybe(st.none(), st.text(max_size=5), st.integers(), st.booleans(), finite), max_size=12),
       st.sampled_from(("string", "boolean", *INTS, "float64")))
def test_mixed_object_lists(values, dtype):
    _same(values, dtype)
    _same(np.array([*values, object()], dtype=object)[:-1] if values else np.array([], object), dtype)


@settings(max_examples=300, deadline=None)
@given(st.lists(maybe(st.none(), st.floats(-1e10, 1e10), st.sampled_from([math.nan, math.inf, 9.2e9, -9.2e9]),
                      st.integers(1_000_000_000, 2_000_000_000).map(float)), max_size=20))
def test_epoch_seconds_to_timestamps(values):
    _same(values, schema.TS)
    _same(np.array([math.nan if v is None else v for v in values], dtype=np.float64), schema.TS)


def test_fractional_epoch_seconds_round_as_pandas_does():
    rng = np.random.default_rng(7)
    seconds = np.concatenate([rng.uniform(1.6e9, 1.8e9, 20000), np.round(rng.uniform(-1e5, 1e5, 20000), 6),
                              rng.uniform(-9.2e9, 9.2e9, 20000), [0.5, -0.5, 1e-9, -1e-9, 0.9999999995]])
    _same(seconds, schema.TS)


def test_booleans_and_special_values():
    _same(np.array([True, False]), "boolean")
    _same([True, None, False], "boolean")
    _same(np.array([1, 0, 2]), "boolean")  # not booleans: pandas decides
    _same([1.5, None], "Int32")
    _same(np.array([np.iinfo(np.int64).min, 5]), schema.TS)  # NaT as int64
    _same(np.array([2**40], dtype=np.int64), "Int32")  # out of range: pandas' error
    _same(["x", 3, None], "string")  # pandas makes "3"
    _same([], schema.TS)
    _same([1.0, 2.5, None], "Float64")


def test_missing_columns_are_all_null_in_their_type():
    cols = schema.arrow_columns({"uid": ["a", "b"]}, tls_schema.CERT_LINKS, 2)
    assert [c.type for c in cols.values()] == [schema.arrow_type(t) for t in tls_schema.CERT_LINKS.values()]
    assert cols["position"].null_count == 2
    with pytest.raises(KeyError, match="not declared"):
        schema.arrow_columns({"nope": [1]}, tls_schema.CERT_LINKS, 1)


# ------------------------------------------------------------------------ file schemas
SCHEMAS = {**registry.ALL, "sources": schema.SOURCES, "disagreements": verify.DISAGREEMENTS,
           "tshark": verify.TSHARK_COLUMNS}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_arrow_schema_is_what_pyarrow_makes_of_the_empty_frame(name):
    ours = schema.arrow_schema(SCHEMAS[name])
    theirs = pa.Schema.from_pandas(schema.empty_frame(SCHEMAS[name]), preserve_index=False)
    assert ours.equals(theirs, check_metadata=False)
    assert json.loads(ours.metadata[b"pandas"]) == json.loads(theirs.metadata[b"pandas"])
    assert pa.Table.from_pylist([], schema=ours).to_pandas().dtypes.astype(str).to_dict() == SCHEMAS[name]


# ------------------------------------------------------------------------ no pandas on the streaming path
_PROBE = textwrap.dedent("""
    import atexit, sys
    atexit.register(lambda: print("PANDAS-IMPORTED", "pandas" in sys.modules, file=sys.stderr))
    sys.argv = ["intransit", *sys.argv[1:]]
    from analyzer.cli import run
    run()
""")


def _pandas_imported(*args: str) -> bool:
    proc = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=600,
                          cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [x for x in proc.stderr.splitlines() if x.startswith("PANDAS-IMPORTED")]
    return line == ["PANDAS-IMPORTED True"]


@pytest.mark.slow
@pytest.mark.parametrize(("command", "extra"), [("flows", []), ("flows", ["--no-dissect"]), ("tls", [])])
def test_streaming_to_parquet_never_imports_pandas(tmp_path, command, extra):
    """Every bundled capture (TLS at each version, certificates, QUIC, DTLS, damaged files)."""
    assert not _pandas_imported(command, str(CAPTURES), *extra, "--format", "parquet", "--out",
                                str(tmp_path / "out.parquet"))
    # the probe sees pandas where a command does use it: the table format prints a pandas frame
    assert _pandas_imported(command, str(CAPTURES / "http_plain.pcap"), "--format", "table")


def test_pandas_imported_after_the_deferred_probe_is_known_to_pyarrow():
    code = textwrap.dedent("""
        import sys
        from analyzer._pandas import defer_in_pyarrow
        assert defer_in_pyarrow()
        import numpy as np, pyarrow as pa
        pa.array(np.arange(3))
        assert "pandas" not in sys.modules
        import pandas
        # the hazard the module guards against: a pyarrow that gave up on pandas takes a Series
        # as a plain sequence, and NaN stays a value instead of becoming null
        raw = pa.array(pandas.Series([1.0, float("nan")])).null_count
        from analyzer._pandas import pd
        fixed = pa.array(pd.Series([1.0, float("nan")])).null_count
        print(raw, fixed)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.split() == ["0", "1"]


def test_library_use_does_not_defer():
    """Only the CLI defers pyarrow's probe: importing and using the package leaves pyarrow alone."""
    code = ("import analyzer, pyarrow as pa, numpy as np; analyzer.analyze('captures/http_plain.pcap'); "
            "pa.array(np.arange(2)); print(pa.lib._pandas_api.have_pandas)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300,
                         cwd=ROOT)
    assert out.stdout.split() == ["True"]


# ------------------------------------------------------------------------ lazy frames, Arrow sinks
def test_analysis_builds_each_frame_once_on_first_read(monkeypatch):
    built: list[str] = []
    original = schema.frame_from_arrow

    def spy(columns, frame_schema):  # type: ignore[no-untyped-def]
        built.append(next(n for n, s in registry.ALL.items() if s == frame_schema))
        return original(columns, frame_schema)

    monkeypatch.setattr(schema, "frame_from_arrow", spy)
    r = analyzer.analyze(str(CAPTURES / "cert_expired_tls12.pcap"))
    assert built == []
    tls = r.tls
    assert built == ["tls"] and r.tls is tls and built == ["tls"]
    assert len(r.flows) == 1 and r.flows.loc[0, "tls_version"] == tls.loc[0, "version"]
    assert r.certs.loc[0, "sha256"] == tls.loc[0, "cert_sha256"]
    assert r["tls"] is tls and "ssh" not in r.frame_names
    assert r.frame_names[:4] == ("flows", "tls", "certs", "cert_links")
    assert r.frame_names[-2:] == ("anomalies", "sources")  # the dissectors' frames in between
    with pytest.raises(KeyError, match=re.escape("this analysis has: " + ", ".join(r.frame_names))):
        r["nope"]
    with pytest.raises(AttributeError, match="no frame 'nope'"):
        r.nope  # noqa: B018
    given = pipeline.Analysis(flows=r.flows)
    assert given.frame_names == ("flows",) and given.flows is r.flows


class ArrowRecorder:
    def __init__(self) -> None:
        self.tables: list[pa.Table] = []

    def write(self, chunk: pd.DataFrame) -> None:
        raise AssertionError("a sink with write_table gets Arrow tables")

    def write_table(self, table: pa.Table) -> None:
        self.tables.append(table)

    def close(self) -> None:
        pass


def test_sinks_with_write_table_get_arrow_tables_of_the_declared_schema(tmp_path):
    cut = tmp_path / "cut.pcap"  # a damaged capture: an anomalies row
    cut.write_bytes((CAPTURES / "http_plain.pcap").read_bytes()[:-3])
    paths = [str(CAPTURES), str(cut)]
    reference = analyzer.analyze(paths, on_problem=lambda p: None)
    assert len(reference.anomalies)
    sinks = {"flows": ArrowRecorder(), "tls": ArrowRecorder(), "anomalies": ArrowRecorder()}
    analyzer.analyze(paths, sinks=sinks, on_problem=lambda p: None)  # type: ignore[arg-type]
    for name, sink in sinks.items():
        assert sink.tables
        for t in sink.tables:
            assert t.schema.equals(schema.arrow_schema(registry.ALL[name]), check_metadata=True)
        got = schema.frame_from_arrow(pa.concat_tables(sink.tables), registry.ALL[name])
        if name == "flows":
            got = got.sort_values(["ts_start", "uid"], kind="stable", ignore_index=True)
        pd.testing.assert_frame_equal(got, getattr(reference, name))


def test_pandas_version_is_read_without_importing_pandas():
    code = "import sys; from analyzer import schema; print(schema._pandas_version(), 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.split() == [pd.__version__, "False"]
