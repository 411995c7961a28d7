"""What a rule is: one declaration with a vectorised predicate (the rules themselves are in rules_*.py).

A predicate receives the `Facts` (flows with zones, TLS sessions with their leaf certificate, as
Arrow columns) and the rule's options (defaults merged with the profile's), and returns
`analyzer.policy._cols.Hits`: the flagged flows (`uid`) and a short evidence text built from the
facts. Predicates work on whole columns with the helpers of `_cols`; none loops over rows, none
uses pandas (a streamed audit never imports it). Evidence quotes wire strings (SNI, certificate
names) as they are: escaping belongs to the report layer, which knows its output format.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analyzer.policy import _cols
    from analyzer.policy.facts import Facts

__all__ = ["SEVERITIES", "Rule", "dt", "severity_rank"]

SEVERITIES = ("info", "low", "medium", "high", "critical")

class _Dtypes:
    """pandas dtypes by name, each resolved once: `x.astype(dt.string)`, `dt("datetime64[ns, UTC]")`
    (for the pandas edge: `evaluate()`'s frames).

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
    predicate: Callable[[Facts, Mapping[str, Any]], _cols.Hits]
    options: Mapping[str, Any] = field(default_factory=dict)
    reads: str = "sessions"  # the facts it reads: sessions, flows (documentation for `intransit rules`)
    needs: str = ""  # facts not yet produced by any dissector, if any (the rule then finds nothing)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"rule {self.id}: unknown severity {self.severity!r}")
