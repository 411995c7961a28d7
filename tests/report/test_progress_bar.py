"""The progress bar's line: what it says, how wide it is, and that file names cannot drive the terminal."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pytest

from analyzer.engines.progress import Progress
from analyzer.report.progress import ProgressBar, _width, progress_line


def snap(**kw: object) -> Progress:
    base: dict[str, object] = {"files_done": 3, "files_total": 24, "current": "captures/day-04.pcap.gz",
                               "packets": 1_234_567, "bytes_done": 50_000_000, "bytes_total": 200_000_000,
                               "elapsed": 10.0}
    return Progress(**{**base, **kw})  # type: ignore[arg-type]


def test_the_line_says_files_packets_rate_eta_and_the_file() -> None:
    line = progress_line(snap(), 200)
    assert line.startswith("[##........]  25%")
    for part in ("files 3/24", "1,234,567 pkts", "5.0 MB/s", "ETA 0:00:30", "captures/day-04.pcap.gz"):
        assert part in line, (part, line)


def test_without_a_total_size_there_is_no_share_and_no_eta() -> None:
    line = progress_line(snap(bytes_total=None, current="<stdin>"), 200)
    assert "%" not in line and "ETA" not in line and "[" not in line
    assert "files 3/24" in line and "5.0 MB/s" in line and "<stdin>" in line


def test_nothing_read_yet_gives_no_rate() -> None:
    line = progress_line(snap(bytes_done=0, elapsed=0.0, packets=0), 200)
    assert "/s" not in line and "ETA" not in line and "0 pkts" in line


@pytest.mark.parametrize("columns", [20, 40, 60, 79, 100, 119])
def test_the_line_fits_the_terminal(columns: int) -> None:
    long_name = "captures/" + "very-long-directory/" * 10 + "mirror-2026-12-06T17:00:00Z.pcap.zst"
    line = progress_line(snap(current=long_name), columns)
    assert _width(line) <= columns
    if columns >= 100:  # room for the name: its end is kept, the start elided
        assert line.endswith("Z.pcap.zst") and "…" in line


def test_wide_characters_count_twice() -> None:
    line = progress_line(snap(current="捕获/" * 30 + "x.pcap"), 80)
    assert _width(line) <= 80 and line.endswith("x.pcap")


def test_a_hostile_file_name_cannot_drive_the_terminal() -> None:
    line = progress_line(snap(current="a\x1b]0;owned\x07\x1b[2J\u202eb.pcap"), 200)
    assert "\x1b" not in line and "\x07" not in line and "\u202e" not in line
    assert "\\x1b]0;owned\\x07" in line and "\\u202e" in line


@dataclass
class Clock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_bar_redraws_in_place_at_most_ten_times_a_second_and_erases_itself() -> None:
    out, clock = io.StringIO(), Clock()
    bar = ProgressBar(out, columns=100, clock=clock)
    bar(snap(packets=1))
    clock.now = 0.05
    bar(snap(packets=2))  # too soon: not drawn
    clock.now = 0.2
    bar(snap(packets=3))
    text = out.getvalue()
    assert text.count("\r") == 2 and "1 pkts" in text and "2 pkts" not in text and "3 pkts" in text
    assert "\n" not in text
    bar.close()
    drawn = out.getvalue()
    assert drawn.endswith("\r") and drawn[len(text):].strip(" \r") == ""  # blanked, cursor at the start


def screen(text: str) -> list[str]:
    """What a terminal shows after `text`: a carriage return goes back to the start of the line,
    characters overwrite what is there."""
    lines, col = [[]], 0  # type: ignore[var-annotated]
    for c in text:
        if c == "\r":
            col = 0
        elif c == "\n":
            lines.append([])
            col = 0
        else:
            line = lines[-1]
            if col < len(line):
                line[col] = c
            else:
                line.append(c)
            col += 1
    return ["".join(line).rstrip() for line in lines]


def test_a_message_goes_above_the_bar_and_closing_leaves_nothing() -> None:
    out, clock = io.StringIO(), Clock()
    bar = ProgressBar(out, columns=100, clock=clock)
    bar(snap())
    clock.now = 1.0
    bar(snap(current="b.pcap"))  # a shorter line: the longer one's tail is blanked
    assert screen(out.getvalue())[0].endswith("ETA 0:00:30  b.pcap")
    bar.message("warning: x.pcap: cut short")
    shown = screen(out.getvalue())
    assert shown[0] == "warning: x.pcap: cut short"
    assert "files 3/24" in shown[1]  # redrawn below
    bar.close()
    assert screen(out.getvalue()) == ["warning: x.pcap: cut short", ""]


def test_a_vanished_terminal_does_not_stop_the_run() -> None:
    class Gone(io.StringIO):
        def write(self, s: str) -> int:
            raise OSError(5, "Input/output error")

    bar = ProgressBar(Gone(), columns=100)
    bar(snap())
    bar.message("warning")
    bar.close()
