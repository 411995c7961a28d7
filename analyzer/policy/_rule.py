"""What a rule is: one declaration with a vectorised predicate (the rules themselves are in rules_*.py).

A predicate receives the `Facts` (flows with zones, TLS sessions with their leaf certificate) and
the rule's options (defaults merged with the profile's), and returns `Hits`: the flagged rows as a
frame with `uid` (the flow) and `evidence` (a short text built from the facts). Predicates work on
whole columns; none loops over rows. Evidence quotes wire strings (SNI, certificate names) as they
are: escaping belongs to the report layer, which knows its output format.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from analyzer.policy import _cols
    from analyzer.policy.facts import Facts

__all__ = ["SEVERITIES", "Hits", "Rule", "as_mask", "day", "dt", "found", "hits", "join", "pick", "severity_rank",
           "text"]

SEVERITIES = ("info", "low", "medium", "high", "critical")

Hits = "pd.DataFrame"  # columns uid (string) and evidence (string); documented alias


class _Dtypes:
    """pandas dtypes by name, each resolved once: `x.astype(dt.string)`, `dt("datetime64[ns, UTC]")`.

    pandas resolves a dtype given by name on every call, twice per `astype` (asking every registered
    extension dtype to parse the name, each failure an exception): that was a fifth of the rules'
    time. A dtype object is used as it is."""

    def __init__(self) -> None:
        self._known: dict[str, Any] = {}

    def __call__(self, name: str) -> Any:
        found = self._known.get(name)
        if found is None:
            from analyzer._pandas import pd

            found = self._known[name] = pd.api.types.pandas_dtype(name)
        return found

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self(name)

    def of(self, schema: Mapping[str, str]) -> dict[str, Any]:
        """A {column: dtype name} schema with its dtypes resolved (for `frame.astype`)."""
        return {c: self(d) for c, d in schema.items()}


dt = _Dtypes()


def severity_rank(name: str) -> int:
    """0 for info ... 4 for critical; ValueError for anything else."""
    return SEVERITIES.index(name)


@dataclass(frozen=True)
class Rule:
    """One rule. `id` is stable: findings, profiles and suppressions refer to it forever."""

    id: str
    title: str
    severity: str  # default severity (a profile may change it)
    rationale: str
    references: tuple[str, ...]
    # returns Hits (a rule over Arrow columns, analyzer.policy._cols) or, until every rule is moved, a frame
    predicate: Callable[[Facts, Mapping[str, Any]], pd.DataFrame | _cols.Hits]
    options: Mapping[str, Any] = field(default_factory=dict)
    reads: str = "sessions"  # the facts it reads: sessions, flows (documentation for `intransit rules`)
    needs: str = ""  # facts not yet produced by any dissector, if any (the rule then finds nothing)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"rule {self.id}: unknown severity {self.severity!r}")


def text(series: pd.Series, missing: str = "?") -> pd.Series:
    """A column as strings for evidence (null -> `missing`), never raising on hostile content."""
    from analyzer._pandas import pd

    # the array's fillna, not the Series' (which goes through a block-wise `where`: ~5x slower)
    return pd.Series(series.astype(dt.string).array.fillna(missing), index=series.index, name=series.name)


_DAY_NS = 86_400 * 10**9


def day(series: pd.Series, missing: str = "?") -> pd.Series:
    """`text(series.dt.strftime("%Y-%m-%d"), missing)`: the day of each timestamp, formatted once per
    distinct day and spread by Arrow's take (a strftime per row was a fifth of the certificate
    rules' time; a capture's sessions fall on a few days)."""
    from analyzer._pandas import pd
    from analyzer.policy.zones import strings_from_codes

    dtype = series.dtype
    if not (isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) == "UTC" and dtype.unit == "ns"):
        return text(series.dt.strftime("%Y-%m-%d"), missing)
    ns = np.asarray(series.array.asi8, dtype=np.int64)
    known = ~series.isna().to_numpy(dtype=bool)
    days, codes = np.unique(ns[known] // _DAY_NS, return_inverse=True)
    names = pd.DatetimeIndex(days * _DAY_NS, tz="UTC").strftime("%Y-%m-%d").tolist()
    every = np.full(len(series), len(names), dtype=np.int64)
    every[known] = codes.reshape(-1)
    return pd.Series(strings_from_codes([*names, missing], every), index=series.index)


def join(*parts: pd.Series | str) -> pd.Series:
    """The parts (texts aligned on one index, and constant strings) joined row by row, in one Arrow
    call: what `a + " x " + b + ...` gives (null where a part is null), without a pandas operation
    and an intermediate array per `+` (the evidence of the rules was a fifth of their time)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from analyzer._pandas import pd

    index = next(p.index for p in parts if not isinstance(p, str))
    big = pa.large_string()
    arrays = [pa.scalar(p, big) if isinstance(p, str) else pa.array(p.astype(dt.string).array).cast(big) for p in parts]
    return pd.Series(pd.array(pc.binary_join_element_wise(*arrays, pa.scalar("", big)), dtype=dt.string), index=index)


def as_mask(mask: Any) -> np.ndarray:
    """A boolean numpy mask (null counts as false)."""
    from analyzer._pandas import pd

    if isinstance(mask, np.ndarray) and mask.dtype == bool:
        return mask
    if isinstance(mask, pd.Series) and mask.dtype == np.bool_:  # isin, notna, ...: no null to fill
        return mask.to_numpy(dtype=bool)
    values = mask.array if isinstance(mask, pd.Series) else mask
    if isinstance(values, pd.arrays.BooleanArray):  # the common case: no copy through a new array
        return values.to_numpy(dtype=bool, na_value=False)
    return np.asarray(pd.array(mask, dtype=dt.boolean).fillna(False), dtype=bool)


def pick(frame: pd.DataFrame, mask: np.ndarray, *columns: str) -> pd.DataFrame:
    """The flagged rows of `frame`, only `uid` and `columns`: evidence is built for those rows alone
    (building it for every row, then dropping most, cost 10x more on large captures)."""
    from analyzer._pandas import pd

    mask = np.asarray(mask, dtype=bool)
    # each column's array filtered (Arrow's filter for strings), not `frame.loc[mask, columns]`'s
    # label lookups and block re-assembly
    return pd.DataFrame({c: frame[c].array[mask] for c in dict.fromkeys(["uid", *columns])}, index=frame.index[mask])


def found(rows: pd.DataFrame, evidence: pd.Series | str) -> pd.DataFrame:
    """Hits from the flagged rows (`pick`) and their evidence (a Series aligned with them, or one text)."""
    from analyzer._pandas import pd

    n = len(rows)
    # the columns' own string arrays (a round trip through numpy objects cost a third of this)
    ev = pd.array([evidence] * n, dtype=dt.string) if isinstance(evidence, str) else evidence.astype(dt.string).array
    return pd.DataFrame({"uid": rows["uid"].astype(dt.string).array, "evidence": ev})


def hits(frame: pd.DataFrame, mask: Any, evidence: pd.Series | str) -> pd.DataFrame:
    """The Hits of `frame` where `mask` is true, with evidence computed for every row (for small frames;
    rules over large ones use `pick` + `found`)."""
    m = as_mask(mask)
    return found(frame.loc[m, ["uid"]], evidence if isinstance(evidence, str) else evidence[m])
