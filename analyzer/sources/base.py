"""The source seam: anything that yields packet batches.

A `Source` has a `name` (what the `sources` frame, anomalies and warnings call it) and `batches()`,
an iterator of `PacketBatch`; damage it can read past is reported in `PacketBatch.problems`, damage
that ends it raises `CaptureError`. Files and stdin are `CaptureFile`s today; a UDP mirror socket
(VXLAN/GENEVE from AWS Traffic Mirroring) is the next implementation: the engines take any Source.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from analyzer.sources.batch import PacketBatch
from analyzer.sources.readers import expand_paths, read_capture

__all__ = ["CaptureFile", "Source", "open_sources"]


class Source(Protocol):
    """Yields packet batches; see the module docstring."""

    @property
    def name(self) -> str: ...

    def batches(self) -> Iterator[PacketBatch]: ...


@dataclass(frozen=True, slots=True)
class CaptureFile:
    """A pcap or pcapng file (plain or compressed), or standard input ('-')."""

    name: str

    def batches(self) -> Iterator[PacketBatch]:
        return read_capture(self.name)


def open_sources(paths: Sequence[str]) -> list[Source]:
    """The captures named by paths (files, directories, globs, '-'), in reading order."""
    return [CaptureFile(p) for p in expand_paths(list(paths))]
