"""Write a frame as a terminal table, CSV, JSON Lines or Parquet.

Strings from the wire are hostile (analyzer.report.text): in the table and in CSV every control
character, bidi control and line separator is shown as an escape (`\x1b`, `\u202e`), and a CSV cell
whose first non-blank character would start a spreadsheet formula gets a leading quote (OWASP CSV
injection advice); JSON Lines escapes them as JSON does (`\u001b`, `\u202e`; DEL too), which is
lossless. Parquet keeps the exact strings.

In the table, a missing value is `-` in every column, whatever its dtype (pandas alone prints
`None`, `<NA>`, `NaN` or `NaT` by dtype), and a string that is `-` itself is printed `\x2d`, so a
`-` always means missing (Zeek's convention for unset fields). CSV and JSON Lines keep their own
empty cell / null. Times are UTC and say so, as RFC 3339 writes them: `2026-11-29T01:56:37.252240Z`
(without the fraction when every value of the column is a whole second).
"""

from __future__ import annotations

import io
import sys
from typing import IO

from analyzer._pandas import pd
from analyzer.report.text import csv_cell, printable

FORMATS = ("table", "csv", "jsonl", "parquet")

def neutralize_csv(value: object) -> object:
    """A cell inert in spreadsheets and on a terminal (`text.csv_cell`): a first non-blank = + - @ | %
    (or a leading tab, CR, LF) gets a leading quote, controls are escaped; plain numbers such as -1 or
    +3.5 are left alone (they are not formulas)."""
    return csv_cell(value) if isinstance(value, str) else value


def jsonl_text(text: str) -> str:
    """JSON Lines as pandas writes them (control and non-ASCII characters already escaped), with DEL
    escaped too: no raw control byte reaches a terminal, and the values are unchanged."""
    return text.replace("\x7f", "\\u007f")


MISSING = "-"  # the table's one spelling of a missing value


def _escape_terminal(value: object) -> object:
    if isinstance(value, str):
        if value == MISSING:
            return "\\x2d"  # a string from the wire must not pass for a missing value
        return printable(value)
    return value


def _missing_as_dash(col: pd.Series) -> pd.Series:
    """`col` with its missing cells (None, NaN, NaT, pd.NA) shown as MISSING.

    Float columns become numpy floats (to_string's na_rep spells their NaN, and their number format
    stays pandas'; the nullable Float64 would print <NA>); other columns with a missing cell become
    object columns holding MISSING."""
    if col.dtype.kind == "f":
        return col.astype("float64")
    missing = col.isna()
    if not missing.any():
        return col
    return col.astype(object).where(~missing, MISSING)


def utc_text(col: pd.Series, *, seconds: bool = False) -> pd.Series:
    """A datetime column as RFC 3339 text in UTC (`2026-11-29T01:56:37.252240Z`); the fraction is left
    out when every value is a whole second, or when `seconds`. A naive column stays without a zone."""
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        col = col.dt.tz_convert("UTC")
        zone = "Z"
    else:
        zone = ""
    whole = seconds or bool((col.dropna().dt.microsecond == 0).all() and (col.dropna().dt.nanosecond == 0).all())
    text = col.dt.strftime("%Y-%m-%dT%H:%M:%S" + ("" if whole else ".%f") + zone)
    return text.astype(object).where(col.notna(), None)


def _string_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if df[c].dtype == object or isinstance(df[c].dtype, pd.StringDtype)]


def csv_safe(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of `df` whose string cells are neutralized for spreadsheets (see neutralize_csv)."""
    safe = df.copy()
    for c in _string_columns(safe):
        safe[c] = safe[c].map(neutralize_csv, na_action="ignore")
    return safe


def write_frame(df: pd.DataFrame, fmt: str, out: str | None = None, *, columns: list[str] | None = None,
                stream: IO[str] | None = None) -> None:
    """Write `df` as `fmt` to the file `out` (or `stream`, default stdout)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if columns:
        df = df[[c for c in columns if c in df.columns]]
    if fmt == "parquet":
        if out is None:
            raise ValueError("parquet needs --out FILE (it is a binary format)")
        df.to_parquet(out, index=False)
        return
    text = io.StringIO()
    if fmt == "csv":
        csv_safe(df).to_csv(text, index=False)
    elif fmt == "jsonl":
        if len(df):
            text.write(jsonl_text(df.to_json(orient="records", lines=True, date_format="iso", date_unit="us")))
    else:
        safe = df.copy()
        for c in _string_columns(safe):
            safe[c] = safe[c].map(_escape_terminal, na_action="ignore")
        for c in safe.columns:
            if isinstance(safe[c].dtype, pd.DatetimeTZDtype):  # UTC, with its zone: 2026-11-29T01:56:37.252240Z
                safe[c] = utc_text(safe[c])
            safe[c] = _missing_as_dash(safe[c])
        if len(safe) == 0:
            text.write("(no rows)\n")
        else:
            with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 250,
                                   "display.max_colwidth", 60):
                text.write(safe.to_string(index=False, na_rep=MISSING) + "\n")
    if out is None:
        (stream or sys.stdout).write(text.getvalue())
    else:
        with open(out, "w", encoding="utf-8", newline="") as fh:
            fh.write(text.getvalue())
