"""Engines: run an analysis over many sources and return one `Analysis`.

An `Engine` takes the sources, the options and the collector that `analyze()` prepared, and feeds
the collector; the serial engine (the default) reads the sources one after the other through one
decoder and one flow table, so flows that span rotated captures are one flow. A distributed engine
(Dask) partitions the sources, runs a serial engine per partition, and merges the flows that cross
partitions before the collector's frames are built.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from analyzer.engines.serial import SerialEngine

if TYPE_CHECKING:
    from analyzer.pipeline import Analysis, Collector, Options
    from analyzer.sources.base import Source
    from analyzer.sources.batch import Problem

__all__ = ["Engine", "SerialEngine"]


class Engine(Protocol):
    """Runs one analysis: reads `sources`, feeds `collector`, reports non-fatal problems to
    `on_problem`, and returns `collector.finish(...)`."""

    def run(self, sources: Sequence[Source], options: Options, collector: Collector,
            on_problem: Callable[[Problem], None]) -> Analysis: ...
