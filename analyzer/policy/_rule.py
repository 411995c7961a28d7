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

__all__ = ["SEVERITIES", "Hits", "Rule", "hits", "severity_rank", "text"]

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


def hits(frame: pd.DataFrame, mask: Any, evidence: pd.Series | str) -> pd.DataFrame:
    """The Hits of `frame` where `mask` is true (null counts as false)."""
    from analyzer._pandas import pd

    m = np.asarray(pd.array(mask, dtype="boolean").fillna(False), dtype=bool)
    uids = frame["uid"].astype("string").to_numpy()[m]  # only the key column: the frames are wide
    if isinstance(evidence, str):
        ev = pd.array([evidence] * len(uids), dtype="string")
    else:
        ev = pd.array(evidence.astype("string").to_numpy()[m], dtype="string")
    return pd.DataFrame({"uid": pd.array(uids, dtype="string"), "evidence": ev})
