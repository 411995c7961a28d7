"""The terminal table of analyzer.report.write_frame: one spelling of a missing value."""

from __future__ import annotations

import io

import pytest

from analyzer import dissect as registry
from analyzer import schema
from analyzer._pandas import pd
from analyzer.report import write_frame


def _table(df: pd.DataFrame) -> list[list[str]]:
    out = io.StringIO()
    write_frame(df, "table", stream=out)
    return [line.split() for line in out.getvalue().splitlines()]


def _every_missing_kind() -> pd.DataFrame:
    return pd.DataFrame({
        "obj": pd.Series(["a", None], dtype=object),
        "string": pd.array(["b", None], dtype="string"),
        "int": pd.array([1, None], dtype="Int64"),
        "bool": pd.array([True, None], dtype="boolean"),
        "float": [0.5, float("nan")],
        "nullable_float": pd.array([0.25, None], dtype="Float64"),
        "ts": pd.Series([pd.Timestamp("2026-01-01", tz="UTC"), pd.NaT]),
    })


def test_every_kind_of_missing_value_is_a_dash() -> None:
    header, first, second = _table(_every_missing_kind())
    assert header == ["obj", "string", "int", "bool", "float", "nullable_float", "ts"]
    assert first == ["a", "b", "1", "True", "0.5", "0.25", "2026-01-01T00:00:00Z"]  # UTC, and it says so
    assert second == ["-"] * 7


def test_a_string_that_is_a_dash_is_not_shown_as_missing() -> None:
    _header, row = _table(pd.DataFrame({"server_name": ["-"], "alpn": [None]}))
    assert row == ["\\x2d", "-"]


def test_csv_and_jsonl_keep_their_own_missing_values() -> None:
    df = _every_missing_kind()
    csv, jsonl = io.StringIO(), io.StringIO()
    write_frame(df, "csv", stream=csv)
    write_frame(df, "jsonl", stream=jsonl)
    assert csv.getvalue().splitlines()[2] == ",,,,,,"
    assert jsonl.getvalue().splitlines()[1] == (
        '{"obj":null,"string":null,"int":null,"bool":null,"float":null,"nullable_float":null,"ts":null}'
    )


@pytest.mark.parametrize("name", sorted(registry.ALL))
def test_declared_frames_print_no_pandas_missing_marker(name: str) -> None:
    """A row of nothing but missing values, in each declared frame's own dtypes."""
    df = schema.frame_from_rows([{}], registry.ALL[name])
    text = io.StringIO()
    write_frame(df, "table", stream=text)
    _header, row = text.getvalue().splitlines()
    assert set(row.split()) == {"-"}
