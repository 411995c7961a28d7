"""The Arrow column helpers the rules are written with (analyzer.policy._cols): null-safety, and
evidence formatted as the pandas helpers formatted it (the findings' evidence must not change)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from analyzer.policy import _cols as c


def pandas_text(series: pd.Series, missing: str = "?") -> pd.Series:
    """How the rules formatted evidence over pandas, before 2026-12-07 (the old `_rule.text`)."""
    return series.astype("string").fillna(missing)


def pandas_day(series: pd.Series, missing: str = "?") -> pd.Series:
    """The old `_rule.day`: `text(series.dt.strftime("%Y-%m-%d"))`."""
    return pandas_text(series.dt.strftime("%Y-%m-%d"), missing)


def test_masks_never_count_a_null_as_true() -> None:
    b = pa.array([True, False, None])
    assert c.true(b).tolist() == [True, False, False]
    assert c.false(b).tolist() == [False, True, False]
    s = pa.array(["TLS 1.0", None, "TLS 1.2"], c.STRING)
    assert c.isin(s, ["TLS 1.0", "TLS 1.1"]).tolist() == [True, False, False]
    assert c.isin(s, []).tolist() == [False, False, False]
    assert c.eq(s, "TLS 1.2").tolist() == [False, False, True]
    assert c.notnull(s).tolist() == [True, False, True]


def test_text_formats_as_the_pandas_helper_did() -> None:
    for values, dtype in (([12.0, 12.5, None, 0.1], "Float64"), ([1, None, 2048], "Int64"), ([True, None], "boolean"),
                          (["a", None, "=cmd"], "string")):
        series = pd.Series(values, dtype=dtype)
        arrow = pa.array(series, from_pandas=True)
        assert c.text(arrow).to_pylist() == pandas_text(series).tolist()
        assert c.text(arrow, "none").to_pylist() == pandas_text(series, "none").tolist()


def test_day_formats_as_the_pandas_helper_did() -> None:
    stamps = ["2026-03-15 23:59:59", None, "1999-12-31 00:00:00", "2026-03-15 00:00:00"]
    series = pd.Series(pd.to_datetime(stamps, utc=True))
    arrow = pa.array(series, from_pandas=True)
    assert c.day(arrow).to_pylist() == pandas_day(series).tolist() == ["2026-03-15", "?", "1999-12-31", "2026-03-15"]


def test_take_pick_join_and_found() -> None:
    cols = c.as_cols({"uid": pa.array(["C1", "C2", "C3"]), "v": pa.array([1, None, 3])})
    assert cols["uid"].type == c.STRING
    assert c.take(cols, np.array([2, -1]))["uid"].to_pylist() == ["C3", None]
    rows = c.pick(cols, np.array([True, True, False]), "v")
    assert list(rows) == ["uid", "v"]
    ev = c.join("v=", c.text(rows["v"]), "!")
    assert ev.to_pylist() == ["v=1!", "v=?!"]
    assert c.join("v=", rows["v"]).to_pylist() == ["v=1", None]
    hits = c.found(rows, ev)
    assert len(hits) == 2 and hits.uid.to_pylist() == ["C1", "C2"]
    assert c.found(rows, "same").evidence.to_pylist() == ["same", "same"]
    assert c.from_codes(["a", "b"], np.array([1, -1, 0])).to_pylist() == ["b", None, "a"]
    assert c.where(np.array([True, False]), pa.array(["x", "y"], c.STRING), "z").to_pylist() == ["x", "z"]
    assert c.nanos(pa.array([None, 5], pa.timestamp("ns", tz="UTC"))).tolist() == [np.iinfo(np.int64).min, 5]


# --- added by rules-a


def test_only_strings_keeps_the_str_options_as_pandas_isin_did() -> None:
    assert c.only_strings(["TLS 1.0", 5, None, "", "TLS 1.1", 1.0]) == ["TLS 1.0", "", "TLS 1.1"]
    s = pa.array(["5", None, "TLS 1.0"], c.STRING)
    assert c.isin(s, c.only_strings([5, "TLS 1.0"])).tolist() == pd.Series(["5", None, "TLS 1.0"], dtype="string").isin(
        [5, "TLS 1.0"]).tolist() == [False, False, True]


# --- added by rules-b

def test_seconds_are_pandas_total_seconds_bit_for_bit() -> None:
    rng = np.random.default_rng(7)
    ns = np.concatenate([
        np.array([0, 1, -1, 10**9 - 1, 10**9, -(10**9) - 1, 2**53 - 1, 2**53, 2**53 + 1, -(2**53) - 7,
                  398 * 86_400 * 10**9 + 999_999_999, np.iinfo(np.int64).max, np.iinfo(np.int64).min + 1]),
        rng.integers(-(2**62), 2**62, 5000), rng.integers(0, 2**56, 5000), rng.integers(2**53, 2**55, 5000),
        rng.integers(0, 400, 2000) * 86_400 * 10**9 + rng.choice([1, 10**9 - 1, 500_000_000], 2000)])
    want = pd.Series(ns.astype("timedelta64[ns]")).dt.total_seconds().to_numpy()
    got = c.seconds(ns)
    assert got.dtype == np.float64 and got.tobytes() == want.tobytes()


def test_span_says_where_the_difference_fits() -> None:
    big, small = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    diff, fits = c.span(np.array([5, big, small, 2**62, -(2**62)]), np.array([7, -1, 1, -(2**62), 2**62]))
    assert fits.tolist() == [True, False, False, False, True]
    assert diff[0] == -2 and diff[4] == small


# --- added by core

def test_fill_keeps_the_type_and_fills_nulls() -> None:
    a = pa.array([1, None, 3], pa.int32())
    assert c.fill(a, -1).type == pa.int32() and c.fill(a, -1).to_pylist() == [1, -1, 3]
    assert c.fill(pa.array(["x", None], c.STRING), "?").to_pylist() == ["x", "?"]
    assert c.fill(pa.array([True, None]), False).to_pylist() == [True, False]


@pytest.mark.parametrize("values, typ", [([1, -2, 3], pa.int32()), ([2**40, 0], pa.int64()), ([1, 255], pa.uint8()),
                                         ([0.5, -1.0], pa.float64()), ([True, False, True] * 5, pa.bool_()),
                                         ([5, 7], pa.timestamp("ns", tz="UTC"))])
def test_numpy_of_reads_the_buffers(values, typ) -> None:
    a = pa.array(values, typ)
    for part in (a, a.slice(1), pa.chunked_array([a.slice(0, 1), a.slice(1)])):
        want = np.asarray(part.cast(pa.int64()) if pa.types.is_timestamp(typ) else part)
        got = c.numpy_of(part)
        assert got.tolist() == want.tolist() and got.flags.writeable
    with pytest.raises(ValueError, match="nulls"):
        c.numpy_of(pa.array([1, None]))
    assert len(c.numpy_of(pa.array([], typ))) == 0


def test_the_helpers_do_not_import_pandas(tmp_path) -> None:
    """Arrow imports pandas for an untyped Python scalar or list and for `to_numpy`: the helpers
    the streamed audit runs never give it one (checked in a fresh process, as the CLI runs)."""
    import subprocess
    import sys

    code = """
import sys
from analyzer._pandas import defer_in_pyarrow
defer_in_pyarrow()
import numpy as np, pyarrow as pa
from analyzer.policy import _cols as c
a = pa.array(np.array(["x", None, "y"], dtype=object), c.STRING)
n = pa.array(np.array([1, 0, 3]), mask=np.array([False, True, False]))
b = pa.array(np.array([True, False, True]), mask=np.array([False, True, False]))
c.true(b); c.false(b); c.notnull(a); c.isin(a, ["x"]); c.eq(a, "y"); c.ints(n); c.text(n); c.text(a)
c.fill(a, "?"); c.numpy_of(c.fill(n, 0)); c.from_codes(["p", "q"], np.array([0, -1, 1]))
c.join("<", c.text(a), ">"); c.where(c.true(b), a, "z")
print("pandas.core" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
