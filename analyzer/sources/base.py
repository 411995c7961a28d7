"""The source seam: anything that yields packet batches.

A `Source` has a `name` (what the `sources` frame, anomalies and warnings call it) and `batches()`,
an iterator of `PacketBatch`; damage it can read past is reported in `PacketBatch.problems`, damage
that ends it raises `CaptureError`. Files and stdin are `CaptureFile`s today; a UDP mirror socket
(VXLAN/GENEVE from AWS Traffic Mirroring) is the next implementation: the engines take any Source.

`open_sources` turns paths into sources (`analyzer.sources.scan`: directories walked, globs
expanded, the same capture read once); what the scan passed over comes back as `SkippedPath`
sources, which yield nothing and carry the reason, so an engine reports each one (a warning, an
anomalies row and a `sources` row; fatal under strict) instead of dropping it silently.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from analyzer.sources.batch import PacketBatch
from analyzer.sources.readers import InputPosition, display_path, read_capture
from analyzer.sources.scan import PathArg, Skipped, as_path_list, scan_paths

__all__ = ["CaptureFile", "SkippedPath", "Source", "open_sources"]


class Source(Protocol):
    """Yields packet batches; see the module docstring."""

    @property
    def name(self) -> str: ...

    def batches(self) -> Iterator[PacketBatch]: ...


@dataclass(frozen=True, slots=True)
class CaptureFile:
    """A pcap or pcapng file (plain or compressed, a FIFO or pipe too), or standard input ('-')."""

    path: str

    @property
    def name(self) -> str:
        return "<stdin>" if self.path == "-" else display_path(self.path)  # undecodable bytes escaped

    def batches(self, position: InputPosition | None = None) -> Iterator[PacketBatch]:
        """The packets; `position`, when given, follows how far into the file the reading is."""
        return read_capture(self.path, position=position)

    def size(self) -> int | None:
        """Bytes of the file as stored (compressed, for a compressed capture), for a progress
        display's estimate; None for standard input, a pipe or FIFO, or a file that cannot be
        stat'ed (reading it then says why)."""
        if self.path == "-":
            return None
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_size if stat.S_ISREG(st.st_mode) else None


@dataclass(frozen=True, slots=True)
class SkippedPath:
    """A path the scan passed over (not a capture, a FIFO in a directory, a duplicate...): no batches."""

    skipped: Skipped

    @property
    def name(self) -> str:
        return self.skipped.name

    def batches(self) -> Iterator[PacketBatch]:
        return iter(())


def open_sources(paths: PathArg | Iterable[PathArg]) -> list[CaptureFile | SkippedPath]:
    """The sources named by paths (files, directories, globs, '-', bytes or PathLike): what the scan
    passed over first (to be reported), then the captures in reading order."""
    scan = scan_paths(as_path_list(paths))
    return [*(SkippedPath(s) for s in scan.skipped), *(CaptureFile(p) for p in scan.files)]
