"""Tallying our app_protocol against tshark's, shared by the protocol groups' oracle tests.

Each oracle test compares, per conversation, the protocol tshark names with ours and yields rows
`(capture, theirs, ours, where)` (`where`: the server port or the transport, whatever tells two of a
capture's conversations apart in the explanation table). A disagreement is explained only when the
test's table maps `(capture, theirs, where)` to exactly our answer (None: we recognise nothing there);
every other one is unexplained and fails the test.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field

Row = tuple[str, str, str | None, Hashable]
_ABSENT = object()  # not in the table (None is a value there: "ours is empty on purpose")


@dataclass
class Agreement:
    total: int = 0
    agree: int = 0
    by_protocol: dict[str, list[int]] = field(default_factory=dict)  # tshark's name -> [conversations, agreed]
    unexplained: list[Row] = field(default_factory=list)

    @property
    def share(self) -> float:
        return self.agree / self.total if self.total else 0.0


def agreement(rows: Iterable[Row], expected: Mapping[tuple[str, str, Hashable], str | None]) -> Agreement:
    """The tally of `rows` against the table of explained disagreements `expected`."""
    out = Agreement()
    for capture, theirs, ours, where in rows:
        out.total += 1
        counts = out.by_protocol.setdefault(theirs, [0, 0])
        counts[0] += 1
        if theirs == ours:
            out.agree += 1
            counts[1] += 1
        elif expected.get((capture, theirs, where), _ABSENT) != ours:
            out.unexplained.append((capture, theirs, ours, where))
    return out
