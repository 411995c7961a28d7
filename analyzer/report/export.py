"""Write a frame as a terminal table, CSV, JSON Lines or Parquet.

Strings from the wire are hostile: CSV cells that a spreadsheet would run as a formula are
prefixed with a quote (OWASP CSV injection advice); terminal output has control characters escaped.

In the table, a missing value is `-` in every column, whatever its dtype (pandas alone prints
`None`, `<NA>`, `NaN` or `NaT` by dtype), and a string that is `-` itself is printed `\x2d`, so a
`-` always means missing (Zeek's convention for unset fields). CSV and JSON Lines keep their own
empty cell / null.
"""

from __future__ import annotations

import io
import re
import sys
from typing import IO

from analyzer._pandas import pd

FORMATS = ("table", "csv", "jsonl", "parquet")

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "|", "%")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_NUMERIC = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def neutralize_csv(value: object) -> object:
    """Make a cell inert in spreadsheets: leading = + - @ tab CR | % get a leading quote.

    Plain numbers such as -1 or +3.5 are left alone (they are not formulas).
    """
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMERIC.match(value):
        return "'" + value
    return value


MISSING = "-"  # the table's one spelling of a missing value


def _escape_terminal(value: object) -> object:
    if isinstance(value, str):
        if value == MISSING:
            return "\\x2d"  # a string from the wire must not pass for a missing value
        return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", value)
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
            df.to_json(text, orient="records", lines=True, date_format="iso", date_unit="us")
    else:
        safe = df.copy()
        for c in _string_columns(safe):
            safe[c] = safe[c].map(_escape_terminal, na_action="ignore")
        for c in safe.columns:
            if isinstance(safe[c].dtype, pd.DatetimeTZDtype):  # UTC to the microsecond, without "+00:00"
                safe[c] = safe[c].dt.strftime("%Y-%m-%d %H:%M:%S.%f")
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
