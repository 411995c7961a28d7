"""Write a frame as a terminal table, CSV, JSON Lines or Parquet.

Strings from the wire are hostile: CSV cells that a spreadsheet would run as a formula are
prefixed with a quote (OWASP CSV injection advice); terminal output has control characters escaped.
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


def _escape_terminal(value: object) -> object:
    if isinstance(value, str):
        return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", value)
    return value


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
        for c in safe.columns:  # terminal: UTC to the microsecond, without the "+00:00"
            if isinstance(safe[c].dtype, pd.DatetimeTZDtype):
                safe[c] = safe[c].dt.strftime("%Y-%m-%d %H:%M:%S.%f")
        if len(safe) == 0:
            text.write("(no rows)\n")
        else:
            with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 250,
                                   "display.max_colwidth", 60):
                text.write(safe.to_string(index=False, na_rep="-") + "\n")
    if out is None:
        (stream or sys.stdout).write(text.getvalue())
    else:
        with open(out, "w", encoding="utf-8", newline="") as fh:
            fh.write(text.getvalue())
