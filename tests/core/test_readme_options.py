"""The README's table of options lists the defaults declared in analyzer/config.py (and so in --help)."""

from __future__ import annotations

import re
from pathlib import Path

from analyzer.config import KEYWORDS, Options

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _rows() -> dict[str, str]:
    table = README[README.index("### Options and their defaults"):]
    rows = {}
    for line in table.splitlines()[1:]:
        if line.startswith("#"):
            break
        m = re.match(r"\|[^|]*\| `(\w+)` \| ([^|]+) \|", line)
        if m:
            rows[m.group(1)] = m.group(2).strip()
    return rows


def test_every_keyword_is_in_the_table():
    assert set(_rows()) == set(KEYWORDS)


def test_the_table_states_the_declared_defaults():
    opts = Options()
    # None: frames, key, keylog
    words = {True: ("on", "dissect"), False: ("off",), None: ("all", "random per run", "none")}
    for keyword, shown in _rows().items():
        part, attr = KEYWORDS[keyword]
        value = getattr(getattr(opts, part) if part else opts, attr)
        if isinstance(value, bool) or value is None:
            assert shown in words[value], keyword
        elif isinstance(value, tuple):
            assert shown == ", ".join(map(str, value)), keyword
        else:
            assert float(shown) == float(value), keyword
