"""Reading our frames' cells in tests that compare them with a manifest's plain JSON values."""

from __future__ import annotations

import pandas as pd


def cell(v: object) -> object:
    """A cell as a plain value, every kind of missing (None, NA, NaN, NaT) as None; lists and dicts as they are."""
    missing = pd.isna(v)
    return None if isinstance(missing, bool) and missing else v
