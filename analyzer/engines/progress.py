"""Progress of a run, for a progress display: a callback seam, no output.

`analyze(..., on_progress=callback)` wraps each source it reads in a metered one before the engine
sees it, so every engine reports progress the same way without knowing about it: after each packet
batch (a megabyte of capture at most) and when each capture ends, `callback(Progress)` gets a
snapshot - captures done and to read, packets read, bytes of the capture files read (as stored:
compressed bytes for a compressed capture, which is what a directory listing shows and what the
time left is proportional to) and their total size. Nothing here prints; the CLI draws the bar
(analyzer.report.progress). A capture whose size is not known (standard input, a pipe) leaves
`bytes_total` None: no estimate of the time left is made then.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from analyzer.sources.base import CaptureFile, SkippedPath
from analyzer.sources.readers import InputPosition

if TYPE_CHECKING:
    from analyzer.sources.batch import PacketBatch

__all__ = ["Progress", "metered", "unmetered"]


@dataclass(frozen=True, slots=True)
class Progress:
    """One snapshot of a run's progress (see the module docstring)."""

    files_done: int  # captures read to their end (or to an error)
    files_total: int  # captures to read; paths the scan passed over are not counted
    current: str | None  # the capture being read (its display name), None between captures
    packets: int  # packets read so far, every capture
    bytes_done: int  # bytes of the capture files read so far, as stored
    bytes_total: int | None  # their total size; None when one of them has no known size
    elapsed: float  # seconds since the first capture was opened

    @property
    def rate(self) -> float | None:
        """Bytes of capture read per second, on average since the start."""
        return self.bytes_done / self.elapsed if self.elapsed > 0 and self.bytes_done else None

    @property
    def eta(self) -> float | None:
        """Seconds left at the average rate so far; None when the total or the rate is unknown."""
        rate = self.rate
        if rate is None or self.bytes_total is None:
            return None
        return max(self.bytes_total - self.bytes_done, 0) / rate


class _Meter:
    def __init__(self, sizes: Sequence[int | None], on_progress: Callable[[Progress], None],
                 clock: Callable[[], float]) -> None:
        self.on_progress = on_progress
        self.clock = clock
        self.files_total = len(sizes)
        self.bytes_total = None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)
        self.files_done = 0
        self.packets = 0
        self.bytes_before = 0  # bytes of the captures already finished
        self.started: float | None = None

    def report(self, current: str | None, bytes_in_current: int) -> None:
        now = self.clock()
        if self.started is None:
            self.started = now
        self.on_progress(Progress(self.files_done, self.files_total, current, self.packets,
                                  self.bytes_before + bytes_in_current, self.bytes_total, now - self.started))


    def finished(self, name: str, nbytes: int, packets: int, file_done: bool) -> None:
        """A piece of a capture was read elsewhere (engines.dask: a task on a worker ended): its
        bytes and packets count now, and the capture when it was its last piece."""
        self.packets += packets
        self.bytes_before += nbytes
        if file_done:
            self.files_done += 1
        self.report(None if file_done else name, 0)


class _Metered:
    """A source that tells the meter how far it is after each of its batches."""

    __slots__ = ("meter", "size", "source")

    def __init__(self, source: Any, size: int | None, meter: _Meter) -> None:
        self.source = source
        self.size = size
        self.meter = meter

    @property
    def name(self) -> str:
        return str(self.source.name)

    def __getattr__(self, attr: str) -> Any:  # anything else an engine asks of the source
        if attr.startswith("__") or attr in self.__slots__:  # not set yet (a copy): no recursion
            raise AttributeError(attr)
        return getattr(self.source, attr)

    def __reduce__(self) -> tuple[Any, tuple[Any]]:
        """Pickled (sent to another process by an engine that distributes sources) as the plain
        source: the callback stays in this process, and the other process reads without metering."""
        return _plain, (self.source,)

    def batches(self) -> Iterator[PacketBatch]:
        meter, name = self.meter, self.name
        position = InputPosition()
        batches = self.source.batches(position) if isinstance(self.source, CaptureFile) else self.source.batches()
        meter.report(name, 0)
        read = 0
        try:
            for batch in batches:
                meter.packets += len(batch)
                at = position.bytes_read()
                if at is not None:
                    read = at if self.size is None else min(at, self.size)
                meter.report(name, read)
                yield batch
        finally:
            meter.files_done += 1
            meter.bytes_before += self.size if self.size is not None else read
            meter.report(None, 0)


def _plain(source: Any) -> Any:
    return source


def metered(sources: Sequence[Any], on_progress: Callable[[Progress], None],
            clock: Callable[[], float] = time.monotonic) -> list[Any]:
    """`sources` with each readable one wrapped so that reading it reports progress to `on_progress`
    (paths the scan passed over stay as they are: engines recognise them)."""
    readable = [s for s in sources if not isinstance(s, SkippedPath)]
    sizes = [s.size() if isinstance(s, CaptureFile) else None for s in readable]
    meter = _Meter(sizes, on_progress, clock)
    by_id = {id(s): size for s, size in zip(readable, sizes, strict=True)}
    return [s if isinstance(s, SkippedPath) else _Metered(s, by_id[id(s)], meter) for s in sources]


def unmetered(sources: Sequence[Any]) -> tuple[list[Any], _Meter | None]:
    """The plain sources behind `metered` ones, and their meter (None when none is metered): for an
    engine that reads the sources elsewhere and reports progress itself (`_Meter.finished`)."""
    meter = None
    plain = []
    for s in sources:
        if isinstance(s, _Metered):
            meter = s.meter
            s = s.source
        plain.append(s)
    return plain, meter
