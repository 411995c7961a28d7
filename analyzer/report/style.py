"""Problem rows stand out in a notebook: a pandas Styler for any frame of an analysis or an audit.

    from analyzer.report.style import highlight_problems
    highlight_problems(result.flows[["client_ip", "server_ip", "tls_version", "verdict"]].head(20))

Each row gets a level from the columns it has, the first that says something deciding:
`verdict` (fail, warn, unknown: the policy layer's judgement of a flow), else `severity` or
`worst_severity` (a finding, a destination), else `grade` (a destination's A-F), else `encrypted`
(False: a flow in the clear, before any policy judged it). A failing row is tinted vermillion and
bold, a warning orange, a low-severity row sky blue, an undecided one grey (Okabe-Ito tints: told
apart with the common colour-vision deficiencies; bold says "fail" without colour).

A Styler renders HTML, and the strings of a capture are hostile: every string cell, index label and
column label is shown through `text.printable` (control and bidi characters as visible escapes: a
U+202E cannot reverse what a reader sees) and then HTML-escaped, so an SNI `<script>...` is text.
A Styler renders every cell it is given: style a slice (`.head()`), not a million flows.
"""

from __future__ import annotations

import html
from collections.abc import Hashable
from typing import TYPE_CHECKING

from analyzer._pandas import pd
from analyzer.report.text import printable

if TYPE_CHECKING:
    from pandas.io.formats.style import Styler

__all__ = ["LEVEL_STYLES", "highlight_problems", "problem_levels"]

LEVEL_STYLES = {
    "fail": "background-color: #F5C6AE; color: #000000; font-weight: bold",  # vermillion #D55E00, light
    "warn": "background-color: #F8DFA6; color: #000000",  # orange #E69F00, light
    "low": "background-color: #CDE8F7; color: #000000",  # sky blue #56B4E9, light
    "unknown": "background-color: #EBEBEB; color: #000000",  # grey
}

_VERDICT = {"fail": "fail", "warn": "warn", "unknown": "unknown", "ok": ""}
_SEVERITY = {"critical": "fail", "high": "fail", "medium": "warn", "low": "low", "info": ""}
_GRADE = {"F": "fail", "E": "fail", "D": "warn", "C": "warn", "B": "", "A": ""}


def _levels_of(col: pd.Series, table: dict[str, str]) -> pd.Series:
    """Each row's level by `table`, None where the column says nothing (missing or not in it)."""
    return col.astype("string").str.strip().map(table).astype(object).where(lambda s: s.notna(), None)


def problem_levels(frame: pd.DataFrame) -> pd.Series:
    """Each row's level: "fail", "warn", "low", "unknown" or "" (nothing to say); see the module
    docstring for the columns read and their order."""
    level = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    for column, table in (("verdict", _VERDICT), ("severity", _SEVERITY), ("worst_severity", _SEVERITY),
                          ("grade", _GRADE)):
        if column in frame:
            level = level.where(level.notna(), _levels_of(frame[column], table))
    if "encrypted" in frame:
        clear = frame["encrypted"].astype("boolean").map({False: "fail", True: ""}).astype(object)
        level = level.where(level.notna(), clear.where(clear.notna(), None))
    return level.fillna("").astype(str)


def _text(value: object) -> str:
    """A label or string cell as inert HTML text."""
    return html.escape(printable(str(value)), quote=True)


def highlight_problems(frame: pd.DataFrame, *, na_rep: str = "-") -> Styler:
    """`frame` as a Styler whose problem rows stand out, every string shown as inert text (see the
    module docstring); numbers, times and booleans keep the Styler's own formatting."""
    levels = problem_levels(frame)
    strings: list[Hashable] = [c for c in frame.columns
               if frame[c].dtype == object or isinstance(frame[c].dtype, pd.StringDtype)]

    styles = pd.DataFrame([[LEVEL_STYLES.get(level, "")] * frame.shape[1] for level in levels],
                          index=frame.index, columns=frame.columns)
    styler = frame.style.apply(lambda _: styles, axis=None)
    styler = styler.format(na_rep=na_rep, precision=3)  # every cell: one spelling of missing
    if strings:
        styler = styler.format(lambda v: na_rep if v is None or v is pd.NA else _text(v), subset=strings)
    styler = styler.format_index(_text, axis=0).format_index(_text, axis=1)
    return styler
