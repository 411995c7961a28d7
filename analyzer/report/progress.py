"""A progress bar on one terminal line: what a batch run over a day of captures shows while it reads.

`ProgressBar` is the `on_progress` callback of `analyze()` (see analyzer.engines.progress for the
snapshots it gets): it redraws one line of a terminal in place with a carriage return, at most ten
times a second, and erases it when closed, so nothing of it is left among the output. The CLI uses
it only when standard error is a terminal (never in a pipe or a log file) and not under --quiet.

    [####......]  45%  files 11/24  1,234,567 pkts  18.2 MB/s  ETA 0:00:41  day-11.pcap.gz

The percentage and the time left are by bytes of the captures as stored (compressed bytes for a
compressed capture); without a known total (standard input, a pipe) the line shows what has been
read and the rate only. File names come from the file system and are hostile: they pass through
`text.printable`, so an escape sequence in a name cannot drive the terminal.
"""

from __future__ import annotations

import os
import shutil
import time
import unicodedata
from collections.abc import Callable
from typing import IO, Protocol

from analyzer.report.text import printable

__all__ = ["ProgressBar", "progress_line"]

BAR_CELLS = 10


class Snapshot(Protocol):
    """What the bar reads of analyzer.engines.progress.Progress (read-only: it is frozen)."""

    @property
    def files_done(self) -> int: ...
    @property
    def files_total(self) -> int: ...
    @property
    def current(self) -> str | None: ...
    @property
    def packets(self) -> int: ...
    @property
    def bytes_done(self) -> int: ...
    @property
    def bytes_total(self) -> int | None: ...

    @property
    def rate(self) -> float | None: ...

    @property
    def eta(self) -> float | None: ...


def _bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError  # pragma: no cover - the loop returns


def _duration(seconds: float) -> str:
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _width(text: str) -> int:
    """Terminal cells of `text`: wide East Asian characters take two, combining marks none."""
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _cut(text: str, cells: int) -> str:
    """`text` cut to `cells` terminal cells, its start replaced by an ellipsis when cut (the end of a
    file name says more than its start)."""
    if _width(text) <= cells:
        return text
    if cells <= 1:
        return "…"[:cells]
    out: list[str] = []
    used = 1
    for c in reversed(text):
        w = _width(c)
        if used + w > cells:
            break
        out.append(c)
        used += w
    return "…" + "".join(reversed(out))


def progress_line(p: Snapshot, columns: int) -> str:
    """The bar's text for one snapshot, at most `columns` terminal cells wide."""
    parts: list[str] = []
    if p.bytes_total:
        share = min(p.bytes_done / p.bytes_total, 1.0)
        filled = int(share * BAR_CELLS)
        parts.append("[" + "#" * filled + "." * (BAR_CELLS - filled) + f"] {share * 100:3.0f}%")
    parts.append(f"files {p.files_done}/{p.files_total}")
    parts.append(f"{p.packets:,} pkts")
    rate = p.rate
    if rate is not None:
        parts.append(f"{_bytes(rate)}/s")
    eta = p.eta
    if eta is not None:
        parts.append(f"ETA {_duration(eta)}")
    line = "  ".join(parts)
    if p.current is not None:
        room = columns - _width(line) - 2
        if room >= 8:
            line += "  " + _cut(printable(p.current), room)
    return line if _width(line) <= columns else _cut(line[::-1], columns)[::-1]  # keep the start


def _terminal_columns(stream: IO[str]) -> int:
    """The width of the terminal `stream` is (COLUMNS first, as shutil does; stdout may be a pipe)."""
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return shutil.get_terminal_size((80, 24)).columns


class ProgressBar:
    """Draws progress snapshots on one line of `stream` (a terminal), in place; see the module
    docstring. `message(line)` prints a line (a warning) above the bar; `close()` erases the bar."""

    def __init__(self, stream: IO[str], *, interval: float = 0.1, columns: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.interval = interval
        self.columns = columns
        self.clock = clock
        self._last_draw: float | None = None
        self._shown = 0  # cells of the line on screen now
        self._latest: Snapshot | None = None

    def _columns(self) -> int:
        cols = self.columns or _terminal_columns(self.stream)
        return max(cols - 1, 20)  # never the last cell: some terminals wrap there

    def __call__(self, p: Snapshot) -> None:
        self._latest = p
        now = self.clock()
        if self._last_draw is not None and now - self._last_draw < self.interval:
            return
        self._last_draw = now
        self._draw(progress_line(p, self._columns()))

    def _draw(self, line: str) -> None:
        pad = max(self._shown - _width(line), 0)
        self._write("\r" + line + " " * pad)
        self._shown = _width(line)

    def _erase(self) -> None:
        if self._shown:
            self._write("\r" + " " * self._shown + "\r")
            self._shown = 0

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # the terminal went away: the run goes on without a bar
            self._shown = 0

    def message(self, line: str) -> None:
        """`line` (already made printable) on a line of its own, the bar redrawn below it."""
        self._erase()
        self._write(line + "\n")
        if self._latest is not None:
            self._draw(progress_line(self._latest, self._columns()))

    def close(self) -> None:
        """Erase the bar: the output that follows starts on a clean line."""
        self._erase()
