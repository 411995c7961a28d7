"""Tallying our app_protocol against tshark's, shared by the protocol groups' oracle tests.

Each oracle test compares, per conversation, the protocol tshark names with ours and yields rows
`(capture, theirs, ours, where)` (`where`: the server port or the transport, whatever tells two of a
capture's conversations apart in the explanation table). A disagreement is explained only when the
test's table maps `(capture, theirs, where)` to exactly our answer (None: we recognise nothing there);
every other one is unexplained and fails the test.
"""

from __future__ import annotations

import csv
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

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


def tagged_corpus(corpus: Path, tags: Iterable[str], *, whole_tags: bool = False) -> list[Path]:
    """The corpus captures (its manifest.csv) carrying one of `tags`: as a whole `;`-separated tag,
    or anywhere in the tags text (`whole_tags=False`: "smb" also finds "smb2"). None without the corpus."""
    manifest = corpus / "manifest.csv"
    if not manifest.is_file():
        return []
    with manifest.open() as fh:
        rows = list(csv.DictReader(fh))
    wanted = tuple(tags)

    def tagged(text: str) -> bool:
        return any(t in (text.split(";") if whole_tags else text) for t in wanted)

    return [corpus / r["file"] for r in rows if tagged(r["tags"]) and (corpus / r["file"]).is_file()]
