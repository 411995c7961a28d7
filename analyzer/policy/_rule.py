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

    from analyzer.policy.facts import Facts

__all__ = ["SEVERITIES", "Hits", "Rule", "as_mask", "found", "hits", "pick", "severity_rank", "text"]

SEVERITIES = ("info", "low", "medium", "high", "critical")

Hits = "pd.DataFrame"  # columns uid (string) and evidence (string); documented alias


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
    predicate: Callable[[Facts, Mapping[str, Any]], pd.DataFrame]
    options: Mapping[str, Any] = field(default_factory=dict)
    reads: str = "sessions"  # the facts it reads: sessions, flows (documentation for `intransit rules`)
    needs: str = ""  # facts not yet produced by any dissector, if any (the rule then finds nothing)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"rule {self.id}: unknown severity {self.severity!r}")


def text(series: pd.Series, missing: str = "?") -> pd.Series:
    """A column as strings for evidence (null -> `missing`), never raising on hostile content."""
    return series.astype("string").fillna(missing)


def as_mask(mask: Any) -> np.ndarray:
    """A boolean numpy mask (null counts as false)."""
    from analyzer._pandas import pd

    return np.asarray(pd.array(mask, dtype="boolean").fillna(False), dtype=bool)


def pick(frame: pd.DataFrame, mask: np.ndarray, *columns: str) -> pd.DataFrame:
    """The flagged rows of `frame`, only `uid` and `columns`: evidence is built for those rows alone
    (building it for every row, then dropping most, cost 10x more on large captures)."""
    return frame.loc[mask, ["uid", *columns]]


def found(rows: pd.DataFrame, evidence: pd.Series | str) -> pd.DataFrame:
    """Hits from the flagged rows (`pick`) and their evidence (a Series aligned with them, or one text)."""
    from analyzer._pandas import pd

    n = len(rows)
    # the columns' own string arrays (a round trip through numpy objects cost a third of this)
    ev = pd.array([evidence] * n, dtype="string") if isinstance(evidence, str) else evidence.astype("string").array
    return pd.DataFrame({"uid": rows["uid"].astype("string").array, "evidence": ev})


def hits(frame: pd.DataFrame, mask: Any, evidence: pd.Series | str) -> pd.DataFrame:
    """The Hits of `frame` where `mask` is true, with evidence computed for every row (for small frames;
    rules over large ones use `pick` + `found`)."""
    m = as_mask(mask)
    return found(frame.loc[m, ["uid"]], evidence if isinstance(evidence, str) else evidence[m])
