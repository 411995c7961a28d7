"""Text from the wire or the file system made safe for a person's terminal or spreadsheet.

Strings from captures (SNI, certificate names, banners, HTTP headers) and file names are hostile:
an escape sequence can retitle the terminal, clear it or recolour it; a bidi control can reverse
what a reader sees (U+202E); a cell starting with a formula character runs in a spreadsheet.
`printable` shows every control, bidi control and undecodable byte as a visible escape; `csv_cell`
also neutralises formulas. The exact bytes stay available where no person reads them (Parquet).
This module imports nothing heavy: the CLI's error path uses it.
"""

from __future__ import annotations

import re

__all__ = ["csv_cell", "printable"]

# C0 controls but tab, DEL, C1 controls; bidi embeddings, overrides, isolates and marks; the line and
# paragraph separators; lone surrogates (how Python keeps an undecodable file-name byte).
_OTHERS = "\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_UNSAFE = re.compile(f"[\x00-\x08\x0a-\x1f{_OTHERS}]")
_UNSAFE_WITH_TAB = re.compile(f"[\x00-\x1f{_OTHERS}]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "|", "%")
_NUMERIC = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the undecodable byte itself
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str, *, tabs: bool = True) -> str:
    """`text` with every control character, bidi control, line separator and undecodable byte shown
    as an escape (`\\x1b`, `\\u202e`); tabs are kept unless `tabs` is False."""
    return (_UNSAFE if tabs else _UNSAFE_WITH_TAB).sub(_escape, text)


def csv_cell(value: str) -> str:
    """A string cell for CSV a person opens: controls escaped, and a formula (a first non-blank
    character of = + - @ | %, or a leading tab, CR or LF) made inert with a leading quote; plain
    numbers such as -1 or +3.5 stay numbers."""
    if value.lstrip(" ").startswith(_FORMULA_START) and not _NUMERIC.match(value.strip()):
        value = "'" + value
    return printable(value, tabs=False)
